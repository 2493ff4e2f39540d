// The warm pool's CLI workers (docs/warm-pool.md): `runbox create`, `run`, `state`, `kill` and `delete` handed by
// bin/runbox's launcher to a pre-started worker give what a fresh Node gives (output, exit status, errors, runc's process tree under a
// subreaper), a kill -9 of the launcher or of the worker mid-call ends the other and leaves nothing behind, and a
// kill -9 of a refill while it starts members leaves its lock free and nothing a drain would miss.
import { spawn } from 'node:child_process';
import { appendFileSync, chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { isProcessAlive, processStartTime } from '../src/host/host-process.js';
import { poolMembers, type PoolMemberState } from '../src/host/warm-pool.js';
import { privatePool } from './helpers/private-pool.js';
import { PROJECT, processesMentioning, RUNBOX, runCommand, TestEnv } from './helpers/runbox.js';

const SUBREAPER = fileURLToPath(new URL('../../test/helpers/subreaper.py', import.meta.url));

function pool(t: { teardown(fn: () => void): void }, size = '1'): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = privatePool(t);
  return { dir, env: { ...process.env, RUNBOX_POOL_DIR: dir, RUNBOX_POOL_SIZE: size } };
}

async function idleWorker(dir: string, install?: string): Promise<PoolMemberState> {
  for (let i = 0; i < 600; i++) {
    const [member] = poolMembers(dir, install).filter((m) => m.kind === 'cli' && m.usable);
    if (member) return member;
    await sleep(100);
  }
  throw new Error(`no CLI worker in the pool at ${dir}: ${JSON.stringify(poolMembers(dir))}`);
}

/** A test's environment and private pool, warmed by a `run` of a bundle of args (exiting with code) until the pool
 * holds an idle CLI worker. */
async function warmPool(t: ExecutionContext, args: string[], code = 0) {
  const env = new TestEnv(t);
  const { dir, env: pooled } = pool(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = args;
  });
  t.is((await env.run(['run', '--bundle', bundle, env.id()], { env: pooled })).code, code);
  return { env, dir, pooled, bundle, worker: await idleWorker(dir) };
}

const gone = (member: PoolMemberState) => !isProcessAlive(member.pid, member.startTime);

async function until(condition: () => boolean): Promise<boolean> {
  for (let i = 0; i < 100 && !condition(); i++) await sleep(100);
  return condition();
}

test('run and create handed to a pooled worker give the output, status and errors a fresh Node gives', async (t) => {
  const { env, dir, pooled, bundle, worker } = await warmPool(t, ['sh', '-c', 'echo out; echo err >&2; exit 7'], 7);
  const run = await env.run(['run', '--bundle', bundle, env.id()], { env: pooled });
  t.deepEqual(run, { code: 7, stdout: 'out\n', stderr: 'err\n' });
  t.true(await until(() => gone(worker)), 'the worker took the call and ended with it');
  t.not((await idleWorker(dir)).pid, worker.pid, 'the pool refilled');

  const missing = join(env.dir, 'no-such-bundle');
  const plain = await env.run(['create', '--bundle', missing, 'x'], { env: { ...process.env, RUNBOX_POOL_SIZE: '0' } });
  const next = await idleWorker(dir);
  const failed = await env.run(['create', '--bundle', missing, 'x'], { env: pooled });
  t.true(await until(() => gone(next)), 'the failed create was the pooled worker\'s');
  t.is(failed.code, 1);
  t.is(failed.stdout, '');
  const message = (text: string) => text.replace(/^time="[^"]*" /, '');
  t.is(message(failed.stderr), message(plain.stderr));
  t.regex(failed.stderr, /level=error msg=.*config\.json not found/);
});

test('state, kill and delete handed to a pooled worker give the output, status and errors a fresh Node gives', async (t) => {
  const { env, dir, pooled } = await warmPool(t, ['true']);
  const fresh = { ...process.env, RUNBOX_POOL_SIZE: '0' };
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '1000'];
  });
  const id = env.id();
  t.is((await env.run(['create', '--bundle', bundle, id], { env: pooled })).code, 0);
  // Each call below finds an idle worker, and is that worker's: it ends with the call.
  const pooledCall = async (args: string[]) => {
    const worker = await idleWorker(dir);
    const result = await env.run(args, { env: pooled });
    t.true(await until(() => gone(worker)), `${args[0]} was the pooled worker's`);
    return result;
  };
  const stateOf = (text: string) => JSON.parse(text) as { id: string; status: string; pid: number };
  const state = await pooledCall(['state', id]);
  t.is(state.code, 0, state.stderr);
  t.deepEqual(stateOf(state.stdout), stateOf((await env.run(['state', id], { env: fresh })).stdout));
  t.is(stateOf(state.stdout).status, 'created');
  t.is((await pooledCall(['kill', id, 'KILL'])).code, 0);
  t.true(await until(() => !processesMentioning('sleep 1000').includes(stateOf(state.stdout).pid)), 'the init is gone');
  const message = (text: string) => text.replace(/^time="[^"]*" /, '');
  const refusedFresh = await env.run(['kill', id, 'KILL'], { env: fresh });
  const refused = await pooledCall(['kill', id, 'KILL']);
  t.deepEqual({ ...refused, stderr: message(refused.stderr) }, { ...refusedFresh, stderr: message(refusedFresh.stderr) });
  t.is(refused.code, 1);
  t.regex(refused.stderr, /level=error msg="container [^:]+: container not running"/);
  t.is((await pooledCall(['delete', id])).code, 0);
  const missing = await pooledCall(['delete', id]);
  t.is(missing.code, 1);
  t.is(message(missing.stderr), message((await env.run(['delete', id], { env: fresh })).stderr));
  t.is((await env.run(['list', '-q'])).stdout, '');
});

test('a pooled create under a subreaper keeps runc\'s process tree: the subreaper reaps the init', async (t) => {
  const { env, pooled, bundle, worker } = await warmPool(t, ['sh', '-c', 'exit 5'], 5);
  const id = env.id();
  const pidFile = join(env.dir, 'init.pid');
  const steps = [
    { run: [RUNBOX, '--root', env.root, 'create', '--bundle', bundle, '--pid-file', pidFile, id] },
    { run: [RUNBOX, '--root', env.root, 'start', id] },
    { reap: pidFile },
  ];
  const result = await runCommand('python3', [SUBREAPER, JSON.stringify(steps)], { env: pooled, timeout: 90_000 });
  t.is(result.code, 0, result.stderr);
  t.deepEqual(JSON.parse(result.stdout), [5]);
  t.true(await until(() => gone(worker)), 'the create was the pooled worker\'s');
  t.is((await env.state(id)).status, 'stopped');
});

for (const victim of ['launcher', 'worker'] as const) {
  test(`kill -9 of the ${victim} during a pooled run ends the other, and delete --force leaves nothing`, async (t) => {
    const { env, pooled, worker } = await warmPool(t, ['true']);
    const marker = `${4000 + Math.floor(Math.random() * 1000)}.${process.pid}`;
    const bundle = env.bundle((spec) => {
      spec.process!.args = ['sleep', marker];
    });
    const id = env.id();
    const launcher = spawn(RUNBOX, ['--root', env.root, 'run', '--bundle', bundle, id], { env: pooled, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => launcher.once('exit', (_code, signal) => resolve(signal)));
    t.true(await until(() => processesMentioning(`sleep ${marker}`).length > 0), 'the container runs');
    t.false(existsSync(worker.socket), 'the worker has the call');
    t.false(gone(worker));
    process.kill(victim === 'launcher' ? launcher.pid! : worker.pid, 'SIGKILL');
    t.is(await exited, 'SIGKILL', 'the caller sees its runbox killed');
    t.true(await until(() => gone(worker)), 'the worker does not outlive the call');
    const deleted = await env.run(['delete', '--force', id]);
    t.is(deleted.code, 0, deleted.stderr);
    t.true(await until(() => processesMentioning(`sleep ${marker}`).length === 0));
  });
}

test('a call whose environment sets what a worker read as it loaded (NODE_OPTIONS) is left to a fresh Node', async (t) => {
  const { env, pooled, bundle, worker } = await warmPool(t, ['true']);
  const run = await env.run(['run', '--bundle', bundle, env.id()], { env: { ...pooled, NODE_OPTIONS: '--max-old-space-size=300' } });
  t.is(run.code, 0, run.stderr);
  await sleep(300);
  t.false(gone(worker), 'the idle worker was not taken');
  t.true(existsSync(worker.socket));
});

test('runbox pool shows each pooled process with its kind, state and memory, and --drain ends the idle ones before it shows the pool', async (t) => {
  const { dir, pooled, worker } = await warmPool(t, ['true']);
  const shown = await runCommand(RUNBOX, ['pool', '--format', 'json'], { env: pooled });
  t.is(shown.code, 0, shown.stderr);
  const state = JSON.parse(shown.stdout) as { directory: string; size: number; members: Array<Record<string, unknown>> };
  t.is(state.directory, dir);
  t.is(state.size, 1);
  const member = state.members.find((m) => m.pid === worker.pid);
  t.like(member, { kind: 'cli', state: 'idle', build: worker.build });
  t.true((member!.rssKib as number) > 0);
  const table = await runCommand(RUNBOX, ['pool'], { env: pooled });
  t.regex(table.stdout, new RegExp(`^cli\\s+${worker.pid}\\s+idle\\s`, 'm'));
  const drained = await runCommand(RUNBOX, ['pool', '--drain', '--format', 'json'], { env: pooled });
  t.is(drained.code, 0, drained.stderr);
  t.deepEqual(JSON.parse(drained.stdout).members, [], 'the pool shown after the drain is empty');
  t.true(gone(worker));
  t.false(existsSync(worker.socket), 'a drained member takes its socket with it');
});

test('removing the pool directory ends its idle members, and a member started after it is gone does not make it again', async (t) => {
  const { dir, worker } = await warmPool(t, ['true']);
  rmSync(dir, { recursive: true, force: true });
  t.true(await until(() => gone(worker)), 'an idle member whose socket is gone leaves');
  // As a refill under way when the directory went would start it.
  const late = spawn('node', [join(PROJECT, 'bin', 'pool-worker.cjs'), 'cli', '600', dir], { stdio: 'ignore' });
  t.teardown(() => void late.kill('SIGKILL'));
  const ended = new Promise<boolean>((resolve) => late.once('exit', () => resolve(true)));
  t.true(await Promise.race([ended, sleep(30_000).then(() => false)]), 'the late member exits');
  t.false(existsSync(dir), 'and the pool directory stays removed');
});

test('the pool directory is 0700 and its sockets 0600, and a pool directory others can enter is not used', async (t) => {
  const { env, dir, pooled, bundle, worker } = await warmPool(t, ['true']);
  t.is(statSync(dir).mode & 0o777, 0o700);
  t.is(statSync(worker.socket).mode & 0o777, 0o600);
  chmodSync(dir, 0o755);
  const run = await env.run(['run', '--bundle', bundle, env.id()], { env: pooled });
  t.is(run.code, 0, run.stderr);
  await sleep(300);
  t.false(gone(worker), 'the idle worker was not taken');
  t.deepEqual(poolMembers(dir).map((m) => m.pid), [worker.pid], 'nor is the pool refilled');
});

test('after an upgrade (a rebuilt CLI bundle) the old build\'s idle worker is not handed a call, and ends', async (t) => {
  // A copy of the install, so that its bundle can be rebuilt without touching the one the other tests use.
  const install = mkdtempSync('/tmp/rbx-install-');
  t.teardown(() => rmSync(install, { recursive: true, force: true }));
  cpSync(join(PROJECT, 'bin'), join(install, 'bin'), { recursive: true });
  mkdirSync(join(install, 'dist'));
  for (const file of ['runbox-launcher', 'runbox-start', 'runbox-agent', 'runbox-lifecycle.cjs', 'runbox.cjs', 'handoff.node']) {
    cpSync(join(PROJECT, 'dist', file), join(install, 'dist', file));
  }
  for (const file of ['package.json', 'oclif.manifest.json']) cpSync(join(PROJECT, file), join(install, file));
  symlinkSync(join(PROJECT, 'node_modules'), join(install, 'node_modules'));
  const runbox = join(install, 'bin', 'runbox');

  const env = new TestEnv(t);
  const { dir, env: pooled } = pool(t);
  const warm = env.bundle((spec) => {
    spec.process!.args = ['true'];
  });
  const first = await runCommand(runbox, ['--root', env.root, 'run', '--bundle', warm, env.id()], { env: pooled });
  t.is(first.code, 0, first.stderr);
  const old = await idleWorker(dir, install);
  appendFileSync(join(install, 'dist', 'runbox-lifecycle.cjs'), '\n// rebuilt\n');

  // A taken worker lives as long as the call it serves: the old one, not taken, is ended by the refill instead.
  const marker = `${5000 + Math.floor(Math.random() * 1000)}.${process.pid}`;
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', marker];
  });
  const id = env.id();
  const call = spawn(runbox, ['--root', env.root, 'run', '--bundle', bundle, id], { env: pooled, stdio: 'ignore' });
  t.teardown(() => void call.kill('SIGKILL'));
  t.true(await until(() => processesMentioning(`sleep ${marker}`).length > 0), 'the container runs');
  t.true(await until(() => gone(old)), 'the old build\'s worker did not take the call, and ended');
  const fresh = await idleWorker(dir, install);
  t.not(fresh.build, old.build);
  const deleted = await env.run(['delete', '--force', id]);
  t.is(deleted.code, 0, deleted.stderr);
});

/** The refill (`runbox pool refill`) holding the lock file at path open, or undefined. */
function refillHolding(lock: string): number | undefined {
  for (const name of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      if (!readFileSync(`/proc/${name}/cmdline`, 'utf8').startsWith('runbox pool refill')) continue;
      if (readdirSync(`/proc/${name}/fd`).some((fd) => readlinkSync(`/proc/${name}/fd/${fd}`) === lock)) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function poolOf(env: NodeJS.ProcessEnv): Promise<Array<{ kind: string; pid: number; state: string }>> {
  const shown = await runCommand(RUNBOX, ['pool', '--format', 'json'], { env });
  if (shown.code !== 0) throw new Error(`runbox pool failed: ${shown.stderr}`);
  return (JSON.parse(shown.stdout) as { members: Array<{ kind: string; pid: number; state: string }> }).members;
}

async function idleWorkers(env: NodeJS.ProcessEnv, count: number): Promise<number[]> {
  for (let i = 0; i < 600; i++) {
    const idle = (await poolOf(env)).filter((m) => m.kind === 'cli' && m.state === 'idle').map((m) => m.pid);
    if (idle.length >= count) return idle.sort();
    await sleep(100);
  }
  throw new Error(`the pool did not hold ${count} idle CLI workers: ${JSON.stringify(await poolOf(env))}`);
}

test('kill -9 of a refill while it starts members: the next call works, a later refill fills the pool, and a drain leaves nothing', async (t) => {
  const env = new TestEnv(t);
  const { dir, env: pooled } = pool(t, '2');
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['true'];
  });
  const lock = join(dir, 'cli.lock');
  const startTimes = new Map<number, string | undefined>();
  const alive = (pid: number) => startTimes.get(pid) !== undefined && processStartTime(pid) === startTimes.get(pid);
  t.teardown(() => [...startTimes.keys()].filter(alive).forEach((pid) => process.kill(pid, 'SIGKILL')));
  const inPool = (pid: number) => readdirSync(dir).some((name) => name.includes(`.${pid}.`));
  // The pool is empty: the call is Node's, and its launcher forks a refill, which takes cli.lock and starts two
  // members. Stopped, the refill and its members stay where they are: members still starting (not yet in the
  // pool). On a busy machine both may have joined the pool before this test saw them: the scene is set again.
  let first!: ReturnType<TestEnv['run']>;
  let refill: number | undefined;
  let starting: number[] = [];
  const sockets = () => readdirSync(dir).filter((name) => name.endsWith('.sock')).length;
  for (let attempt = 0; attempt < 5; attempt++) {
    first = env.run(['run', '--bundle', bundle, env.id()], { env: pooled });
    refill = undefined;
    starting = [];
    // Until the refill is seen with its two members, or both members are in the pool already (missed).
    for (let i = 0; i < 6000 && starting.length < 2 && sockets() < 2; i++) {
      refill ??= refillHolding(lock);
      if (refill) starting = childrenOf(refill);
      if (starting.length < 2) await sleep(5);
    }
    if (starting.length === 2) {
      for (const pid of [refill!, ...starting]) process.kill(pid, 'SIGSTOP');
      for (const pid of [refill!, ...starting]) startTimes.set(pid, processStartTime(pid));
      if (starting.some((pid) => !inPool(pid))) break;
      for (const pid of [refill!, ...starting]) process.kill(pid, 'SIGCONT');
    }
    await first;
    await until(() => refillHolding(lock) === undefined);
    await runCommand(RUNBOX, ['pool', '--drain'], { env: pooled });
  }
  t.is(starting.length, 2, 'the refill started two members');
  t.true(starting.some((pid) => !inPool(pid)), 'the refill was killed while starting a member');
  process.kill(refill!, 'SIGKILL');
  for (const pid of starting) process.kill(pid, 'SIGCONT');
  t.is((await first).code, 0);

  t.deepEqual(await idleWorkers(pooled, 2), starting.slice().sort(), 'the members it started carry on, in the pool');
  const next = await env.run(['run', '--bundle', bundle, env.id()], { env: pooled });
  t.is(next.code, 0, next.stderr);
  const refilled = await idleWorkers(pooled, 2);
  for (const pid of refilled) if (!startTimes.has(pid)) startTimes.set(pid, processStartTime(pid));
  t.is(refilled.filter((pid) => !starting.includes(pid)).length, 1, 'a later refill took the lock and filled the pool again');

  const drained = await runCommand(RUNBOX, ['pool', '--drain', '--format', 'json'], { env: pooled });
  t.is(drained.code, 0, drained.stderr);
  t.deepEqual(JSON.parse(drained.stdout).members, []);
  t.true(await until(() => ![...startTimes.keys()].some(alive)), 'no pooled process is left, nor the refill');
  t.deepEqual(readdirSync(dir).filter((name) => name.endsWith('.sock')), [], 'nor any socket a launcher would try');
});
