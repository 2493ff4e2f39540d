// The containerd shim, measured through a private containerd: `ctr run --rm IMG ID true` end to end with the
// runbox shim and with containerd's runc shim in the same run, and the runbox shim's RSS for a one-container
// pod and for each extra container of the same pod (10 containers). Returns a markdown section.
import { processRssKib } from '../src/host/host-process.js';
import { pidsWith, PrivateContainerd } from '../test/helpers/containerd.js';
import { cleanupList } from '../test/helpers/teardown.js';
import { median } from './stats.js';
import { verdict } from './verdict.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const POD_SIZE = 10;


function rssMiB(pid: number): number {
  return (processRssKib(pid) ?? 0) / 1024;
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
    const containerd = await PrivateContainerd.start(cleanups);
    const times: Record<string, number[]> = { runbox: [], runc: [] };
    for (let i = 0; i < ROUNDS; i++) {
      times.runbox!.push(await endToEnd(containerd, 'io.containerd.runbox.v2'));
      times.runc!.push(await endToEnd(containerd, 'io.containerd.runc.v2'));
    }
    const runbox = median(times.runbox!);
    const runc = median(times.runc!);

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
      `${ROUNDS} rounds, medians.`,
      '',
      '| measure | runbox shim | runc shim | ratio | target |',
      '| --- | ---: | ---: | ---: | --- |',
      `| \`ctr run --rm IMG ID true\` end to end | ${runbox.toFixed(1)} ms | ${runc.toFixed(1)} ms | ${(runbox / runc).toFixed(2)}× | ${verdict(runbox / runc, 1.5, '×')} |`,
      `| shim RSS, one-container pod | ${onePod.toFixed(1)} MiB | ${runcRss} MiB | | ${verdict(onePod, 60, ' MiB', '<')} |`,
      `| shim RSS added per extra container (pod of ${POD_SIZE}) | ${perExtra.toFixed(2)} MiB | | | ${verdict(perExtra, 1, ' MiB', '<')} |`,
      '',
    ].join('\n');
  } finally {
    await cleanups.run();
  }
}
