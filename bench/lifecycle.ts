// The lifecycle part of npm run bench: the median latency of each runc lifecycle operation for runbox and for runc
// in the same run, beside a clean `node -e 0` (no NODE_EXTRA_CA_CERTS: what a user's machine pays to start any Node
// CLI), sampled between runbox's calls so that both see the same load. runbox runs with its warm pool of CLI
// workers (a private pool, waited for before each call it serves and each cycle: the steady state of a pool that
// keeps up), and once more without it. Returns a markdown section.
import { spawnSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultSpec } from '../src/oci/default-spec.js';
import { poolMembers } from '../src/host/warm-pool.js';
import { median } from './stats.js';
import { timedCall } from './timed-call.js';
import { verdict } from './verdict.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);

interface Context {
  project: string;
  work: string;
}

type Op = 'create' | 'start' | 'state' | 'kill' | 'delete' | 'cycle' | 'run';
const OPS: Op[] = ['create', 'start', 'state', 'kill', 'delete', 'cycle', 'run'];
// create with the pool: under the floor (issue 20's target); the others as before the pool.
const TARGETS: Record<Op, number> = { create: 1, start: 1.5, state: 1.3, kill: 1.5, delete: 1.5, cycle: 1.5, run: 1.5 };

function bundle(context: Context, name: string, args: string[]): string {
  const dir = join(context.work, name);
  cpSync(join(context.project, 'fixtures', 'busybox', 'build', 'rootfs'), join(dir, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

function waitStopped(command: string, root: string, id: string, env: NodeJS.ProcessEnv): void {
  for (let i = 0; i < 500; i++) {
    const out = spawnSync(command, ['--root', root, 'state', id], { encoding: 'utf8', env });
    if (out.status === 0 && JSON.parse(out.stdout).status === 'stopped') return;
    spawnSync('sleep', ['0.01']);
  }
  throw new Error(`${id} did not stop`);
}

interface Options {
  /** Runs before each measured call: the floor is sampled between runbox's calls, under the same load. */
  alongside?: () => void;
  /** Runs (untimed) before each call the pool serves but start, and each cycle: waits for an idle pooled worker. */
  ready?: () => void;
  env?: NodeJS.ProcessEnv;
  tag?: string;
}

function measure(context: Context, command: string, { alongside = () => {}, ready = () => {}, env = process.env, tag: name }: Options = {}): Record<Op, number> {
  const timed = (args: string[]): number => timedCall(command, args, join(context.work, 'stderr'), env);
  const tag = name ?? command.replace(/\W/g, '_');
  const root = join(context.work, `root-${tag}`);
  const sleeper = bundle(context, `sleep-${tag}`, ['sleep', '100']);
  const trueBundle = bundle(context, `true-${tag}`, ['/bin/true']);
  const samples: Record<Op, number[]> = { create: [], start: [], state: [], kill: [], delete: [], cycle: [], run: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const id = `bench-${round}`;
    ready();
    alongside();
    samples.create.push(timed(['--root', root, 'create', '--bundle', sleeper, id]));
    alongside();
    samples.start.push(timed(['--root', root, 'start', id]));
    ready();
    alongside();
    samples.state.push(timed(['--root', root, 'state', id]));
    ready();
    alongside();
    samples.kill.push(timed(['--root', root, 'kill', id, 'KILL']));
    waitStopped(command, root, id, env);
    ready();
    alongside();
    samples.delete.push(timed(['--root', root, 'delete', id]));

    const cycleId = `cycle-${round}`;
    ready();
    const started = process.hrtime.bigint();
    timed(['--root', root, 'create', '--bundle', trueBundle, cycleId]);
    timed(['--root', root, 'start', cycleId]);
    waitStopped(command, root, cycleId, env);
    timed(['--root', root, 'delete', cycleId]);
    samples.cycle.push(Number(process.hrtime.bigint() - started) / 1e6);

    const runId = `run-${round}`;
    ready();
    alongside();
    // As runc's, a foreground run removes its container once it has exited.
    samples.run.push(timed(['--root', root, 'run', '--bundle', trueBundle, runId]));
  }
  return Object.fromEntries(OPS.map((op) => [op, median(samples[op])])) as Record<Op, number>;
}

/** Waits until the pool at dir holds an idle CLI worker of this build (the refill after the last take is done). */
function poolReady(dir: string): void {
  for (let i = 0; i < 3000; i++) {
    if (poolMembers(dir).some((member) => member.kind === 'cli' && member.usable)) return;
    spawnSync('sleep', ['0.01']);
  }
  throw new Error(`the warm pool at ${dir} did not refill`);
}

export async function lifecycleBench(context: Context): Promise<string> {
  const floorSamples: number[] = [];
  const runboxCommand = join(context.project, 'bin', 'runbox');
  const poolDir = join(context.work, 'pool');
  const pooled = { ...process.env, RUNBOX_POOL_DIR: poolDir, RUNBOX_POOL_SIZE: '1' };
  // The first call fills the pool.
  spawnSync(runboxCommand, ['--root', join(context.work, 'root-fill'), 'run', '--bundle', bundle(context, 'fill', ['/bin/true']), 'fill'], { env: pooled, stdio: 'ignore' });
  const runbox = measure(context, runboxCommand, {
    alongside: () => floorSamples.push(timedCall(process.execPath, ['-e', '0'], join(context.work, 'stderr'))),
    ready: () => poolReady(poolDir),
    env: pooled,
  });
  poolReady(poolDir); // the refill after the last call has started its member
  const workers = poolMembers(poolDir).filter((member) => member.kind === 'cli' && member.alive);
  const workerRss = workers.length ? (workers[0]!.rssKib ?? 0) / 1024 : NaN;
  const floor = median(floorSamples);
  const cold = measure(context, runboxCommand, { env: { ...process.env, RUNBOX_POOL_SIZE: '0' }, tag: 'runbox-no-pool' });
  const runc = measure(context, 'runc');
  return [
    `Median of ${ROUNDS} rounds, each call timed from spawn to exit. Floor: a clean \`node -e 0\` = ${floor.toFixed(1)} ms. ` +
      'cycle = create → start → (poll state until stopped) → delete of /bin/true, against 4 floors; run = `run` of ' +
      '/bin/true in the foreground. runbox with its warm pool (one CLI worker, refilled before each call it serves and ' +
      'each cycle: a pool that keeps up; start is C, and the state calls inside a cycle find the pool as they find ' +
      'it); without the pool, a fresh Node for each call.',
    '',
    '| operation | runbox ms (pool) | runbox ms (no pool) | runc ms | runbox (pool) ÷ floor | target |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
    ...OPS.map((op) => {
      const ratio = runbox[op] / (floor * (op === 'cycle' ? 4 : 1));
      const comparison = op === 'create' ? '<' : '≤';
      return `| ${op} | ${runbox[op].toFixed(1)} | ${cold[op].toFixed(1)} | ${runc[op].toFixed(1)} | ${ratio.toFixed(2)}× | ${verdict(ratio, TARGETS[op], '×', comparison)} |`;
    }),
    '',
    `The pool's idle memory: one CLI worker holds ${workerRss.toFixed(1)} MiB resident (RUNBOX_POOL_SIZE workers of each kind; see the shim part for a pooled shim).`,
    '',
  ].join('\n');
}
