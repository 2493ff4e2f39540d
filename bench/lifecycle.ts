// The lifecycle part of npm run bench: the median latency of each runc lifecycle operation for runbox and for runc
// in the same run, beside a clean `node -e 0` (no NODE_EXTRA_CA_CERTS: what a user's machine pays to start any Node
// CLI), sampled between runbox's calls so that both see the same load. Returns a markdown section.
import { spawnSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultSpec } from '../src/oci/default-spec.js';
import { median } from './stats.js';
import { timedCall } from './timed-call.js';
import { verdict } from './verdict.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);

interface Context {
  project: string;
  work: string;
}

type Op = 'create' | 'start' | 'state' | 'kill' | 'delete' | 'cycle';
const OPS: Op[] = ['create', 'start', 'state', 'kill', 'delete', 'cycle'];
const TARGETS: Record<Op, number> = { create: 1.5, start: 1.5, state: 1.3, kill: 1.5, delete: 1.5, cycle: 1.5 };

function bundle(context: Context, name: string, args: string[]): string {
  const dir = join(context.work, name);
  cpSync(join(context.project, 'fixtures', 'busybox', 'build', 'rootfs'), join(dir, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

function waitStopped(command: string, root: string, id: string): void {
  for (let i = 0; i < 500; i++) {
    const out = spawnSync(command, ['--root', root, 'state', id], { encoding: 'utf8' });
    if (out.status === 0 && JSON.parse(out.stdout).status === 'stopped') return;
    spawnSync('sleep', ['0.01']);
  }
  throw new Error(`${id} did not stop`);
}

/** `alongside` runs before each measured call: the floor is sampled between runbox's calls, under the same load. */
function measure(context: Context, command: string, alongside: () => void = () => {}): Record<Op, number> {
  const timed = (args: string[]): number => timedCall(command, args, join(context.work, 'stderr'));
  const tag = command.replace(/\W/g, '_');
  const root = join(context.work, `root-${tag}`);
  const sleeper = bundle(context, `sleep-${tag}`, ['sleep', '100']);
  const trueBundle = bundle(context, `true-${tag}`, ['/bin/true']);
  const samples: Record<Op, number[]> = { create: [], start: [], state: [], kill: [], delete: [], cycle: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const id = `bench-${round}`;
    alongside();
    samples.create.push(timed(['--root', root, 'create', '--bundle', sleeper, id]));
    alongside();
    samples.start.push(timed(['--root', root, 'start', id]));
    alongside();
    samples.state.push(timed(['--root', root, 'state', id]));
    alongside();
    samples.kill.push(timed(['--root', root, 'kill', id, 'KILL']));
    waitStopped(command, root, id);
    alongside();
    samples.delete.push(timed(['--root', root, 'delete', id]));

    const cycleId = `cycle-${round}`;
    const started = process.hrtime.bigint();
    timed(['--root', root, 'create', '--bundle', trueBundle, cycleId]);
    timed(['--root', root, 'start', cycleId]);
    waitStopped(command, root, cycleId);
    timed(['--root', root, 'delete', cycleId]);
    samples.cycle.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return Object.fromEntries(OPS.map((op) => [op, median(samples[op])])) as Record<Op, number>;
}

export async function lifecycleBench(context: Context): Promise<string> {
  const floorSamples: number[] = [];
  const runbox = measure(context, join(context.project, 'bin', 'runbox'), () => {
    floorSamples.push(timedCall(process.execPath, ['-e', '0'], join(context.work, 'stderr')));
  });
  const floor = median(floorSamples);
  const runc = measure(context, 'runc');
  return [
    `Median of ${ROUNDS} rounds, each call timed from spawn to exit. Floor: a clean \`node -e 0\` = ${floor.toFixed(1)} ms. ` +
      'cycle = create → start → (poll state until stopped) → delete of /bin/true, against 4 floors.',
    '',
    '| operation | runbox ms | runc ms | runbox ÷ floor | target |',
    '| --- | ---: | ---: | ---: | --- |',
    ...OPS.map((op) => {
      const ratio = runbox[op] / (floor * (op === 'cycle' ? 4 : 1));
      return `| ${op} | ${runbox[op].toFixed(1)} | ${runc[op].toFixed(1)} | ${ratio.toFixed(2)}× | ${verdict(ratio, TARGETS[op], '×')} |`;
    }),
    '',
  ].join('\n');
}
