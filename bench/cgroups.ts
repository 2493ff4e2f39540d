// What resource limits cost the CLI: `runbox run` of /bin/true with and without linux.resources (memory, cpu,
// pids), interleaved round by round so that both see the same load, and `runbox update` of a running container.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultSpec } from '../src/oci/default-spec.js';
import type { LinuxResources } from '../src/oci/linux-resources.js';
import { median } from './stats.js';
import { timedCall } from './timed-call.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const project = fileURLToPath(new URL('../../', import.meta.url));
const runbox = join(project, 'bin', 'runbox');
const LIMITS: LinuxResources = { memory: { limit: 64 << 20 }, cpu: { shares: 512, quota: 50_000, period: 100_000 }, pids: { limit: 64 } };

function runboxMs(root: string, args: string[]): number {
  return timedCall(runbox, ['--root', root, ...args], join(root, '..', 'stderr'));
}

export async function cgroupsBench(): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'runbox-bench-cg-'));
  const root = join(work, 'state');
  cpSync(join(project, 'fixtures', 'busybox', 'build', 'rootfs'), join(work, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  const useSpec = (args: string[], resources: LinuxResources | undefined): void => {
    const spec = defaultSpec();
    spec.root!.path = join(work, 'rootfs');
    spec.process!.terminal = false;
    spec.process!.args = args;
    if (resources) spec.linux!.resources = { ...spec.linux!.resources, ...resources };
    writeFileSync(join(work, 'config.json'), JSON.stringify(spec));
  };
  const samples = { plain: [] as number[], limited: [] as number[], update: [] as number[] };
  try {
    useSpec(['sleep', '1000'], LIMITS);
    runboxMs(root, ['run', '-d', '--bundle', work, 'updated']);
    for (let round = 0; round < ROUNDS; round++) {
      useSpec(['/bin/true'], undefined);
      samples.plain.push(runboxMs(root, ['run', '--bundle', work, `plain-${round}`]));
      useSpec(['/bin/true'], LIMITS);
      samples.limited.push(runboxMs(root, ['run', '--bundle', work, `limited-${round}`]));
      samples.update.push(runboxMs(root, ['update', '--memory', `${96 + (round % 2)}m`, 'updated']));
    }
  } finally {
    spawnSync(runbox, ['--root', root, 'delete', '--force', 'updated']);
    rmSync(work, { recursive: true, force: true });
  }
  return [
    `resource limits (emulated driver), median of ${ROUNDS} rounds`,
    '',
    '| measure | ms |',
    '| --- | ---: |',
    `| \`runbox run\` of /bin/true, no linux.resources (default cgroups only) | ${median(samples.plain).toFixed(1)} |`,
    `| \`runbox run\` of /bin/true with memory, cpu and pids limits | ${median(samples.limited).toFixed(1)} |`,
    `| \`runbox update --memory\` of a running container | ${median(samples.update).toFixed(1)} |`,
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(await cgroupsBench());
