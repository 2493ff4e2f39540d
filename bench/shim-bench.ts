// The containerd shim, measured through private containerds: `ctr run --rm IMG ID true` end to end with the
// runbox shim taken from its warm pool, with the runbox shim started cold (pool size 0), and with containerd's runc
// shim in the same run; a pooled shim's idle RSS; the runbox shim's RSS for a one-container pod and for each extra
// container of the same pod (10 containers). Returns a markdown section.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processRssKib } from '../src/host/host-process.js';
import { poolMembers } from '../src/host/warm-pool.js';
import { pidsWith, PrivateContainerd } from '../test/helpers/containerd.js';
import { cleanupList } from '../test/helpers/teardown.js';
import { median } from './stats.js';
import { verdict } from './verdict.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const POD_SIZE = 10;


function rssMiB(pid: number): number {
  return (processRssKib(pid) ?? 0) / 1024;
}

/** Waits until the pool at dir holds an idle shim of this build (the refill after the last take is done). */
async function poolReady(dir: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (poolMembers(dir).some((member) => member.kind === 'shim' && member.usable)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the warm pool at ${dir} did not refill`);
}

async function endToEnd(containerd: PrivateContainerd, runtime: string): Promise<number> {
  const id = containerd.id('bench');
  const started = process.hrtime.bigint();
  const result = await containerd.ctr(['run', '--rm', '--fifo-dir', containerd.fifoDir, '--runtime', runtime, 'docker.io/library/busybox:latest', id, 'true']);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.code !== 0) throw new Error(`ctr run --runtime ${runtime}: ${result.stderr.trim()}`);
  return ms;
}

export async function shimBench(): Promise<string> {
  const cleanups = cleanupList();
  try {
    const poolDir = mkdtempSync(join(tmpdir(), 'runbox-bench-pool-'));
    cleanups.teardown(() => {
      for (const member of poolMembers(poolDir)) if (member.alive) process.kill(member.pid, 'SIGTERM');
      rmSync(poolDir, { recursive: true, force: true });
    });
    const pooled = await PrivateContainerd.start(cleanups, { RUNBOX_POOL_DIR: poolDir, RUNBOX_POOL_SIZE: '1' });
    const containerd = await PrivateContainerd.start(cleanups, { RUNBOX_POOL_SIZE: '0' });
    await endToEnd(pooled, 'io.containerd.runbox.v2');
    const times: Record<string, number[]> = { pooled: [], runbox: [], runc: [] };
    for (let i = 0; i < ROUNDS; i++) {
      await poolReady(poolDir);
      times.pooled!.push(await endToEnd(pooled, 'io.containerd.runbox.v2'));
      await poolReady(poolDir);
      times.runbox!.push(await endToEnd(containerd, 'io.containerd.runbox.v2'));
      times.runc!.push(await endToEnd(containerd, 'io.containerd.runc.v2'));
    }
    const withPool = median(times.pooled!);
    const runbox = median(times.runbox!);
    const runc = median(times.runc!);
    const idleShims = poolMembers(poolDir).filter((member) => member.kind === 'shim' && member.alive);
    const idleRss = idleShims.length ? ((idleShims[0]!.rssKib ?? 0) / 1024).toFixed(1) : 'n/a';

    const pod = ['--annotation', `io.runbox.group=${containerd.id('pod')}`];
    const first = containerd.id('pod-c');
    const run = async (id: string, runtime: string, flags: string[]) => {
      const result = await containerd.ctr(['run', '-d', '--fifo-dir', containerd.fifoDir, '--runtime', runtime, ...flags, 'docker.io/library/busybox:latest', id, 'sleep', '1000']);
      if (result.code !== 0) throw new Error(`ctr run -d: ${result.stderr.trim()}`);
    };
    await run(first, 'io.containerd.runbox.v2', pod);
    const [shim] = containerd.shimPids();
    const onePod = rssMiB(shim!);
    for (let i = 1; i < POD_SIZE; i++) await run(containerd.id('pod-c'), 'io.containerd.runbox.v2', pod);
    const perExtra = (rssMiB(shim!) - onePod) / (POD_SIZE - 1);
    await run(containerd.id('runc-c'), 'io.containerd.runc.v2', []);
    const runcShims = pidsWith('containerd-shim-runc-v2', containerd.address);
    const runcRss = runcShims.length ? rssMiB(runcShims[0]!).toFixed(1) : 'n/a';

    return [
      `${ROUNDS} rounds, medians. "pool": the runbox shim taken from its warm pool (one idle shim, refilled before each ` +
        'run: a pool that keeps up); "no pool": a fresh Node shim for each run (RUNBOX_POOL_SIZE=0).',
      '',
      '| measure | runbox shim | runc shim | ratio | target |',
      '| --- | ---: | ---: | ---: | --- |',
      `| \`ctr run --rm IMG ID true\` end to end, pool | ${withPool.toFixed(1)} ms | ${runc.toFixed(1)} ms | ${(withPool / runc).toFixed(2)}× | ${verdict(withPool / runc, 1.2, '×')} |`,
      `| \`ctr run --rm IMG ID true\` end to end, no pool | ${runbox.toFixed(1)} ms | ${runc.toFixed(1)} ms | ${(runbox / runc).toFixed(2)}× | ${verdict(runbox / runc, 1.5, '×')} |`,
      `| a pooled shim's RSS while idle | ${idleRss} MiB | | | |`,
      `| shim RSS, one-container pod | ${onePod.toFixed(1)} MiB | ${runcRss} MiB | | ${verdict(onePod, 60, ' MiB', '<')} |`,
      `| shim RSS added per extra container (pod of ${POD_SIZE}) | ${perExtra.toFixed(2)} MiB | | | ${verdict(perExtra, 1, ' MiB', '<')} |`,
      '',
    ].join('\n');
  } finally {
    await cleanups.run();
  }
}
