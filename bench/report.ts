// BENCHMARKS.md as npm run bench writes it: a heading, then one section per part between markers, so that a part run
// alone (`--only NAME`) replaces its own section and leaves the others as the last whole run wrote them. Each
// section says when, where and under what load it was measured.
import { cpus, loadavg, release, totalmem } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../src/host/atomic-file.js';

export interface Part {
  name: string;
  title: string;
  /** What the part measures against what: one sentence. */
  about: string;
}

const HEADING = `# Benchmarks

Written by \`npm run bench\` (one part alone: \`node dist/bench/bench.js --only NAME\`): every figure below comes from a
run of the code in this repository, measured side by side with its peer in the same run. "met" appears only where the
measured value is within its target. Lifecycle ratios are against a clean \`node -e 0\` (no NODE_EXTRA_CA_CERTS), the
floor any Node CLI pays on a user's machine.
`;

export function machine(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`;
}

/** The load average as a short text, to say how quiet the machine was. */
export function load(): string {
  return loadavg()[0]!.toFixed(1);
}

const begin = (name: string) => `<!-- bench:${name} -->`;
const end = (name: string) => `<!-- /bench:${name} -->`;

export function section(part: Part, body: string, startedLoad: string): string {
  const date = new Date().toISOString().slice(0, 10);
  return [
    begin(part.name),
    `## ${part.title}`,
    '',
    `${part.about} Measured ${date} on ${machine()}; load average ${startedLoad} at the start, ${load()} at the end.`,
    '',
    body.trimEnd(),
    end(part.name),
  ].join('\n');
}

/** Puts `text` (a section with its markers) in place of the part's old section, in the order of `order`. */
export function writeReport(file: string, order: string[], sections: Map<string, string>): void {
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const kept = (name: string): string | undefined => {
    const from = old.indexOf(begin(name));
    const to = old.indexOf(end(name));
    return from >= 0 && to > from ? old.slice(from, to + end(name).length) : undefined;
  };
  const body = order.map((name) => sections.get(name) ?? kept(name)).filter((text): text is string => text !== undefined);
  writeFileAtomic(file, `${HEADING}\n${body.join('\n\n')}\n`, 0o644);
}
