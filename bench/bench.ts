// npm run bench: median latency of each lifecycle operation for runbox and runc in the same run, beside a bare
// `node -e 0` (the floor any Node CLI pays). Prints a markdown table.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { guestAssets } from '../src/hypervisor/guest-assets.js';
import { defaultSpec } from '../src/oci/default-spec.js';
import { rpcBench } from './rpc-bench.js';
import { imagePullBench } from './image-pull.js';
import { unpackBench } from './unpack.js';
import { vmBench } from './vm.js';
import { shimBench } from './shim-bench.js';
import { cgroupsBench } from './cgroups.js';
import { median } from './stats.js';
import { timedCall } from './timed-call.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const project = fileURLToPath(new URL('../../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'runbox-bench-'));

function bundle(name: string, args: string[]): string {
  const dir = join(work, name);
  cpSync(join(project, 'fixtures', 'busybox', 'build', 'rootfs'), join(dir, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

const timed = (command: string, args: string[], env?: NodeJS.ProcessEnv): number => timedCall(command, args, join(work, 'stderr'), env);
/** The environment bin/runbox starts Node in: NODE_EXTRA_CA_CERTS handed over, not read at start-up. */
const { NODE_EXTRA_CA_CERTS: extraCaCerts, ...nodeEnv } = process.env;


function waitStopped(command: string, root: string, id: string): void {
  for (let i = 0; i < 500; i++) {
    const out = spawnSync(command, ['--root', root, 'state', id], { encoding: 'utf8' });
    if (out.status === 0 && JSON.parse(out.stdout).status === 'stopped') return;
    spawnSync('sleep', ['0.01']);
  }
  throw new Error(`${id} did not stop`);
}

type Op = 'create' | 'start' | 'state' | 'kill' | 'delete' | 'cycle';
const OPS: Op[] = ['create', 'start', 'state', 'kill', 'delete', 'cycle'];

/** `alongside` runs before each measured call: the floor is sampled between runbox's calls, under the same load. */
function measure(command: string, alongside: () => void = () => {}): Record<Op, number> {
  const root = join(work, `root-${command.replace(/\W/g, '_')}`);
  const sleeper = bundle(`sleep-${command.replace(/\W/g, '_')}`, ['sleep', '100']);
  const trueBundle = bundle(`true-${command.replace(/\W/g, '_')}`, ['/bin/true']);
  const samples: Record<Op, number[]> = { create: [], start: [], state: [], kill: [], delete: [], cycle: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const id = `bench-${round}`;
    alongside();
    samples.create.push(timed(command, ['--root', root, 'create', '--bundle', sleeper, id]));
    alongside();
    samples.start.push(timed(command, ['--root', root, 'start', id]));
    alongside();
    samples.state.push(timed(command, ['--root', root, 'state', id]));
    alongside();
    samples.kill.push(timed(command, ['--root', root, 'kill', id, 'KILL']));
    waitStopped(command, root, id);
    alongside();
    samples.delete.push(timed(command, ['--root', root, 'delete', id]));

    const cycleId = `cycle-${round}`;
    const started = process.hrtime.bigint();
    timed(command, ['--root', root, 'create', '--bundle', trueBundle, cycleId]);
    timed(command, ['--root', root, 'start', cycleId]);
    waitStopped(command, root, cycleId);
    timed(command, ['--root', root, 'delete', cycleId]);
    samples.cycle.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return Object.fromEntries(OPS.map((op) => [op, median(samples[op])])) as Record<Op, number>;
}

try {
  // The floor is a bare `node -e 0` in this environment. Where NODE_EXTRA_CA_CERTS is set, every Node start
  // parses that file, which runbox defers (src/image/extra-ca-certs.ts): the floor without it is shown too.
  const floorSamples: number[] = [];
  const leanFloorSamples: number[] = [];
  const runbox = measure(join(project, 'bin', 'runbox'), () => {
    floorSamples.push(timed(process.execPath, ['-e', '0']));
    if (extraCaCerts) leanFloorSamples.push(timed(process.execPath, ['-e', '0'], nodeEnv));
  });
  const floor = median(floorSamples);
  const leanFloor = extraCaCerts ? median(leanFloorSamples) : undefined;
  const runc = measure('runc');
  const targets: Record<Op, number> = { create: 1.5, start: 1.5, state: 1.3, kill: 1.5, delete: 1.5, cycle: 1.5 };
  const lines = [
    `median of ${ROUNDS} rounds; floor = \`node -e 0\` = ${floor.toFixed(1)} ms${leanFloor === undefined ? '' : ` (${leanFloor.toFixed(1)} ms without NODE_EXTRA_CA_CERTS)`}; cycle = create→start→(poll state until stopped)→delete of /bin/true`,
    '',
    `| operation | runbox ms | runc ms | runbox ÷ floor |${leanFloor === undefined ? '' : ' ÷ floor without NODE_EXTRA_CA_CERTS |'} target |`,
    `| --- | ---: | ---: | ---: |${leanFloor === undefined ? '' : ' ---: |'} --- |`,
    ...OPS.map((op) => {
      // The cycle is several CLI calls: its floor is that many node starts.
      const calls = op === 'cycle' ? 4 : 1;
      const ratio = runbox[op] / (floor * calls);
      const lean = leanFloor === undefined ? '' : ` ${(runbox[op] / (leanFloor * calls)).toFixed(2)}× |`;
      return `| ${op} | ${runbox[op].toFixed(1)} | ${runc[op].toFixed(1)} | ${ratio.toFixed(2)}× |${lean} ≤ ${targets[op]}× ${ratio <= targets[op] ? 'met' : 'NOT met'} |`;
    }),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  // The microVMs before the image benches: run after them (hundreds of MB unpacked, containerd's store filled), the
  // floor itself came out a third slower, and noisier, on this 2-core machine.
  let noGuest: string | undefined;
  try {
    guestAssets();
  } catch (error) {
    noGuest = (error as Error).message;
  }
  process.stdout.write(noGuest ? `\nmicroVMs: not measured: ${noGuest}\n` : `\n${await vmBench({ project, work })}\n`);
  process.stdout.write(`\n${await unpackBench()}`);
  process.stdout.write(`\n${await imagePullBench()}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

process.stdout.write(`\n${await rpcBench()}`);
process.stdout.write(`\n${await shimBench()}`);
process.stdout.write(`\n${await cgroupsBench()}`);
