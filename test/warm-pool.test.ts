// The warm pool (docs/warm-pool.md) under a private containerd: a container's start takes an idle, pre-started shim
// instead of starting Node, the pool refills, works disabled, survives kill -9 of its members and of a taken shim,
// never serves two pods with one process, never hands a pod to a process of an older build, and a shim `start`
// killed in the middle of its handoff leaves no pooled shim serving nobody.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, appendFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { processStartTime } from '../src/host/host-process.js';
import { poolMembers, type PoolMemberState } from '../src/host/warm-pool.js';
import { killShims, pidsWith, PrivateContainerd } from './helpers/containerd.js';
import { privatePool } from './helpers/private-pool.js';
import { mountsUnder, PROJECT } from './helpers/runbox.js';

const CLOCK_TICKS = 100;

async function waitForMembers(dir: string, count: number, install = PROJECT.replace(/\/$/, '')): Promise<PoolMemberState[]> {
  for (let i = 0; i < 600; i++) {
    const members = poolMembers(dir, install).filter((member) => member.kind === 'shim' && member.usable);
    if (members.length >= count) return members;
    await sleep(100);
  }
  throw new Error(`the pool at ${dir} did not fill: ${JSON.stringify(poolMembers(dir))}`);
}

function bundleOf(containerd: PrivateContainerd, id: string): string {
  return join(containerd.dir, 'state', 'io.containerd.runtime.v2.task', 'default', id);
}

function shimPidOf(containerd: PrivateContainerd, id: string): number {
  return Number(readFileSync(join(bundleOf(containerd, id), 'shim.pid'), 'utf8'));
}

/** Seconds since boot now, in clock ticks, as /proc/PID/stat's start times count. */
function ticksNow(): number {
  return Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * CLOCK_TICKS);
}

/**
 * A private containerd whose shims come from a pool of one (of the install `runtime` belongs to), filled by a first
 * start: its directory and its idle member.
 */
async function filledPool(t: ExecutionContext, runtime?: string, install?: string): Promise<{ dir: string; containerd: PrivateContainerd; member: PoolMemberState }> {
  const dir = privatePool(t);
  const containerd = await PrivateContainerd.start(t, { RUNBOX_POOL_DIR: dir, RUNBOX_POOL_SIZE: '1' });
  t.is((await containerd.run(containerd.id(), ['true'], ['--rm'], runtime)).code, 0);
  const [member] = await waitForMembers(dir, 1, install);
  return { dir, containerd, member: member! };
}

async function stopTask(containerd: PrivateContainerd, id: string): Promise<void> {
  await containerd.ctr(['task', 'kill', '-s', 'KILL', id]);
  await containerd.waitForStatus(id, 'STOPPED');
  await containerd.ctr(['task', 'delete', id]);
  await containerd.ctr(['containers', 'rm', id]);
}

test('a start through containerd takes a pooled shim, started before it, and the pool refills', async (t) => {
  const dir = privatePool(t);
  const containerd = await PrivateContainerd.start(t, { RUNBOX_POOL_DIR: dir, RUNBOX_POOL_SIZE: '1' });
  // The first start finds the pool empty: Node is started as without a pool, and the pool is filled after it.
  const first = containerd.id();
  t.is((await containerd.run(first, ['sleep', '1000'], ['-d'])).code, 0);
  const [member] = await waitForMembers(dir, 1);
  const second = containerd.id();
  const run = await containerd.run(second, ['sh', '-c', 'echo pooled'], ['--rm']);
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, 'pooled\n');
  const [refilled] = await waitForMembers(dir, 1);
  t.not(refilled!.pid, member!.pid, 'the member taken is no longer in the pool; a new one is');
  t.false(existsSync(member!.socket));

  await sleep(200);
  const before = ticksNow();
  const third = containerd.id();
  t.is((await containerd.run(third, ['sleep', '1000'], ['-d'])).code, 0);
  const shim = shimPidOf(containerd, third);
  t.is(shim, refilled!.pid, 'the shim serving the pod is the pooled process');
  t.true(Number(processStartTime(shim)) < before, 'started before the pod was asked for');
  t.deepEqual(containerd.shimPids().filter((pid) => pid === shim), [shim], 'ps shows it with the shim\'s command line');
  await stopTask(containerd, first);
  await stopTask(containerd, third);
  for (let i = 0; i < 50 && existsSync(`/proc/${shim}`); i++) await sleep(100);
  t.false(existsSync(`/proc/${shim}`), 'the pooled shim ends with its pod');
});

test('with the pool disabled (size 0) a start works, and leaves the pool\'s idle shims alone', async (t) => {
  const dir = privatePool(t);
  const filling = await PrivateContainerd.start(t, { RUNBOX_POOL_DIR: dir, RUNBOX_POOL_SIZE: '1' });
  t.is((await filling.run(filling.id(), ['true'], ['--rm'])).code, 0);
  const [member] = await waitForMembers(dir, 1);
  const containerd = await PrivateContainerd.start(t, { RUNBOX_POOL_DIR: dir, RUNBOX_POOL_SIZE: '0' });
  for (let i = 0; i < 2; i++) {
    const id = containerd.id();
    const run = await containerd.run(id, ['echo', 'hello'], ['-d']);
    t.is(run.code, 0, run.stderr);
    t.not(shimPidOf(containerd, id), member!.pid, 'no pod is handed to the pool');
    await stopTask(containerd, id);
  }
  await sleep(500);
  t.deepEqual(poolMembers(dir).map((m) => m.pid), [member!.pid], 'nor is it refilled');
});

test('the pool\'s size and idle time come from the runtime config file, and an idle member exits after its idle time', async (t) => {
  const dir = privatePool(t);
  const config = join(dir, '..', `${dir.split('/').pop()}.json`);
  appendFileSync(config, JSON.stringify({ pool: { size: 2, idleSeconds: 3 } }));
  t.teardown(() => rmSync(config, { force: true }));
  const containerd = await PrivateContainerd.start(t, { RUNBOX_POOL_DIR: dir, RUNBOX_POOL_SIZE: '0' });
  const run = await containerd.run(containerd.id(), ['true'], ['--rm', '--runtime-config-path', config]);
  t.is(run.code, 0, run.stderr);
  const members = await waitForMembers(dir, 2);
  t.is(members.length, 2);
  for (let i = 0; i < 100 && poolMembers(dir).length; i++) await sleep(100);
  t.deepEqual(poolMembers(dir), [], 'idle members exit, and take their sockets with them');
  for (let i = 0; i < 50 && members.some((member) => processStartTime(member.pid) === member.startTime); i++) await sleep(100);
  for (const member of members) t.is(processStartTime(member.pid), undefined);
});

test('kill -9 of the idle pool and of a just-taken shim leaves nothing behind, and the next start works', async (t) => {
  const { dir, containerd, member: idle } = await filledPool(t);
  process.kill(idle!.pid, 'SIGKILL');
  await sleep(200);
  const after = await containerd.run(containerd.id(), ['echo', 'after'], ['--rm']);
  t.is(after.code, 0, after.stderr);
  t.is(after.stdout, 'after\n');
  const [member] = await waitForMembers(dir, 1);
  t.false(existsSync(idle!.socket), 'the dead member\'s socket is gone');

  const id = containerd.id();
  t.is((await containerd.run(id, ['sleep', '4343'], ['-d'])).code, 0);
  const shim = shimPidOf(containerd, id);
  t.is(shim, member!.pid);
  process.kill(shim, 'SIGKILL');
  for (let i = 0; i < 100 && (await containerd.tasks()).has(id); i++) await sleep(100);
  t.false((await containerd.tasks()).has(id));
  for (let i = 0; i < 50 && pidsWith('sleep 4343').length; i++) await sleep(100);
  t.deepEqual(pidsWith('sleep 4343'), []);
  t.deepEqual(mountsUnder(containerd.dir).filter((line) => line.includes(`/${id}/rootfs`)), [], containerd.complaints([id]));
  const next = await containerd.run(containerd.id(), ['echo', 'next'], ['--rm']);
  t.is(next.code, 0, next.stderr);
  t.is(next.stdout, 'next\n');
  await waitForMembers(dir, 1);
  t.deepEqual(readdirSync(dir).filter((name) => name.endsWith('.sock')).sort(),
    poolMembers(dir).filter((m) => m.alive).map((m) => m.socket.split('/').pop()).sort(), 'no socket of a dead member is left');
});

test('a pooled process never serves two pods: once taken its socket is gone and nothing answers there', async (t) => {
  const { containerd, member } = await filledPool(t);
  const a = containerd.id();
  t.is((await containerd.run(a, ['sleep', '1000'], ['-d'])).code, 0);
  t.is(shimPidOf(containerd, a), member!.pid);
  const refused = await new Promise<string>((resolve) => {
    const socket = connect(member!.socket);
    socket.once('connect', () => resolve('connected'));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
  t.is(refused, 'ENOENT');
  const b = containerd.id();
  t.is((await containerd.run(b, ['sleep', '1000'], ['-d'])).code, 0);
  t.not(shimPidOf(containerd, b), member!.pid, 'another pod gets another shim');
  t.regex(readFileSync(`/proc/${member!.pid}/cmdline`, 'utf8'), new RegExp(`-id.${a}`), 'the taken shim is the first pod\'s');
  await stopTask(containerd, a);
  await stopTask(containerd, b);
});

test('after an upgrade (a rebuilt shim bundle) the old build\'s pooled shims are not used, and end', async (t) => {
  // A copy of the install, so that its bundle can be rebuilt without touching the one the other tests use.
  const install = mkdtempSync('/tmp/rbx-install-');
  t.teardown(() => rmSync(install, { recursive: true, force: true }));
  cpSync(join(PROJECT, 'bin'), join(install, 'bin'), { recursive: true });
  mkdirSync(join(install, 'dist'));
  for (const file of ['containerd-shim-runbox-v2.cjs', 'shim-launcher', 'handoff.node', 'mount.node', 'runbox-agent']) {
    cpSync(join(PROJECT, 'dist', file), join(install, 'dist', file));
  }
  symlinkSync(join(PROJECT, 'dist', 'proto'), join(install, 'dist', 'proto'));
  symlinkSync(join(PROJECT, 'node_modules'), join(install, 'node_modules'));
  const runtime = join(install, 'bin', 'containerd-shim-runbox-v2');

  const { dir, containerd, member: old } = await filledPool(t, runtime, install);
  appendFileSync(join(install, 'dist', 'containerd-shim-runbox-v2.cjs'), '\n// rebuilt\n');
  t.deepEqual(poolMembers(dir, install).filter((m) => m.usable), [], 'the old member is no longer usable');

  const id = containerd.id();
  t.is((await containerd.run(id, ['sleep', '1000'], ['-d'], runtime)).code, 0);
  t.not(shimPidOf(containerd, id), old!.pid, 'the pod is not handed to the old build');
  const [fresh] = await waitForMembers(dir, 1, install);
  t.not(fresh!.build, old!.build);
  for (let i = 0; i < 50 && existsSync(`/proc/${old!.pid}`); i++) await sleep(100);
  t.false(existsSync(`/proc/${old!.pid}`), 'the old build\'s member is ended by the refill');
  t.false(existsSync(old!.socket));
  await stopTask(containerd, id);
});

test('a pod served by a pooled shim survives a containerd restart, and the pool serves the next pod', async (t) => {
  const { dir, containerd, member } = await filledPool(t);
  const id = containerd.id();
  t.is((await containerd.run(id, ['sleep', '1000'], ['-d'])).code, 0);
  t.is(shimPidOf(containerd, id), member!.pid);
  const [idle] = await waitForMembers(dir, 1);
  await containerd.restartDaemon();
  t.is((await containerd.tasks()).get(id)?.status, 'RUNNING');
  const next = containerd.id();
  t.is((await containerd.run(next, ['sleep', '1000'], ['-d'])).code, 0);
  t.is(shimPidOf(containerd, next), idle!.pid, 'the member that waited through the restart serves the next pod');
  await stopTask(containerd, id);
  await stopTask(containerd, next);
});

/** The bytes waiting to be read on the unix sockets of process pid (ss's Recv-Q). */
function bytesQueuedFor(pid: number): number {
  const result = spawnSync('ss', ['-xpn'], { encoding: 'utf8' });
  return result.stdout.split('\n').filter((line) => line.includes(`pid=${pid},`))
    .reduce((sum, line) => sum + Number(line.trim().split(/\s+/)[2] ?? 0), 0);
}

/** The processes listening on the unix socket at path, as ss shows them. */
function listenersOf(path: string): string {
  const lines = spawnSync('ss', ['-xlpn'], { encoding: 'utf8' }).stdout.split('\n').filter((line) => line.includes(path));
  return lines.length ? lines.join('; ') : 'none';
}

/** 'connected', or the error code of a connection to the unix socket at path. */
function connectionTo(path: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

/** The syscall process pid is blocked in (the number /proc/PID/syscall starts with), or undefined. */
const POLL = [7, 271];

/**
 * Stops the process at pid; whether it was then still in a poll with no child, i.e. still waiting for a pooled
 * shim's answer rather than serving the pod itself.
 */
async function stopWhileWaiting(pid: number): Promise<boolean> {
  const stateOf = () => readFileSync(`/proc/${pid}/status`, 'utf8').match(/^State:\s+(\S)/m)?.[1];
  try {
    process.kill(pid, 'SIGSTOP');
    if (!(await until(() => stateOf() !== 'R' && stateOf() !== 'S')) || stateOf() !== 'T') return false;
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return POLL.includes(syscallOf(pid) ?? -1) && children === '';
  } catch {
    return false; // it ended: the pod is served without the member
  }
}

function syscallOf(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]);
  } catch {
    return undefined;
  }
}

async function until(condition: () => boolean, tries = 100): Promise<boolean> {
  for (let i = 0; i < tries && !condition(); i++) await sleep(50);
  return condition();
}

const handoffWindows: Array<[string, boolean]> = [
  ['before its pooled shim answered', false],
  ['after its pooled shim took the pod', true],
];

for (const [window, answered] of handoffWindows) test(`kill -9 of a shim start ${window} leaves no shim serving nobody, and the next starts work`, async (t) => {
  // `start` run as containerd runs it (test/shim-launcher.test.ts), so that it can be stopped inside its handoff.
  const shim = join(PROJECT, 'bin', 'containerd-shim-runbox-v2');
  const dir = privatePool(t);
  const env = { ...process.env, RUNBOX_POOL_DIR: dir, RUNBOX_POOL_SIZE: '1' };
  const work = mkdtempSync('/tmp/rbx-handoff-');
  const containerdAddress = join(work, 'containerd.sock');
  const namespace = `handoff-${process.pid}-${answered ? 'taken' : 'sent'}`;
  const flagsOf = (id: string) => ['-namespace', namespace, '-address', containerdAddress, '-publish-binary', '/bin/true', '-id', id];
  const socketOf = (group: string) => `/run/containerd/s/${createHash('sha256').update(`${containerdAddress}/${namespace}/${group}`).digest('hex')}`;
  // Containers named pod* are of one pod (group), as a pod's are under the CRI.
  const bundleOf = (id: string) => {
    const bundle = join(work, id);
    mkdirSync(bundle);
    writeFileSync(join(bundle, 'config.json'), JSON.stringify({ annotations: { 'io.runbox.group': id.startsWith('pod') ? 'pod' : id } }));
    return bundle;
  };
  const started: number[] = [];
  t.teardown(async () => {
    await killShims(started);
    for (const id of readdirSync(work).filter((name) => name !== 'containerd.sock')) {
      spawnSync(shim, [...flagsOf(id), '-bundle', join(work, id), 'delete'], { cwd: join(work, id), env });
    }
    rmSync(work, { recursive: true, force: true });
    rmSync(socketOf('pod'), { force: true });
  });
  const start = (id: string) => {
    const bundle = bundleOf(id);
    const result = spawnSync(shim, [...flagsOf(id), 'start'], { cwd: bundle, env, encoding: 'utf8', input: '' });
    const pid = Number(readFileSync(join(bundle, 'shim.pid'), 'utf8'));
    started.push(pid);
    return { status: result.status, address: result.stdout, pid };
  };

  // The start waits POOL_HANDOFF_TIMEOUT_MS (2 s) for the member's answer, then serves the pod itself. A machine
  // that keeps this process from running for that long (a loaded CI host) lets it: the attempt starts again.
  let member: PoolMemberState | undefined;
  let caught: { pid: number; exited: Promise<unknown> } | undefined;
  for (let attempt = 1; !caught; attempt++) {
    t.is(start(`warm${attempt}`).status, 0);
    [member] = await waitForMembers(dir, 1);
    const stoppedMember = member!;
    t.teardown(() => {
      if (processStartTime(stoppedMember.pid) === stoppedMember.startTime) process.kill(stoppedMember.pid, 'SIGKILL');
    });
    // The member is stopped, so `start` connects, sends the work, and waits for the answer; stopped there in turn,
    // it cannot go on once the member has answered.
    process.kill(stoppedMember.pid, 'SIGSTOP');
    rmSync(join(work, 'pod'), { recursive: true, force: true });
    const starting = spawn(shim, [...flagsOf('pod'), 'start'], { cwd: bundleOf('pod'), env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => starting.once('exit', resolve));
    t.true(await until(() => POLL.includes(syscallOf(starting.pid!) ?? -1)), 'start waits for the member\'s answer');
    if (await stopWhileWaiting(starting.pid!)) {
      t.true(existsSync(stoppedMember.socket), 'the member has not taken the connection yet');
      caught = { pid: starting.pid!, exited };
      break;
    }
    if (attempt === 3) throw new Error('the start could not be stopped while it waited for the member, in 3 attempts');
    t.log(`attempt ${attempt}: the start stopped waiting before it was stopped; again`);
    starting.kill('SIGKILL');
    await exited;
    for (const pid of pidsWith(namespace, '-id pod ')) spawnSync('kill', ['-9', String(pid)]);
    process.kill(stoppedMember.pid, 'SIGCONT');
    await until(() => processStartTime(stoppedMember.pid) !== stoppedMember.startTime);
    rmSync(socketOf('pod'), { force: true });
  }
  const killed = caught;
  if (answered) {
    process.kill(member!.pid, 'SIGCONT');
    t.true(await until(() => bytesQueuedFor(killed.pid) > 0), 'the member answered that it took the pod');
    t.regex(readFileSync(`/proc/${member!.pid}/cmdline`, 'utf8'), /-id.pod/, 'the member is the pod\'s shim');
    process.kill(killed.pid, 'SIGKILL');
    await killed.exited;
  } else {
    process.kill(killed.pid, 'SIGKILL');
    await killed.exited;
    process.kill(member!.pid, 'SIGCONT');
  }

  t.true(await until(() => processStartTime(member!.pid) !== member!.startTime), 'the shim whose start died exits');
  t.is(await connectionTo(socketOf('pod')), existsSync(socketOf('pod')) ? 'ECONNREFUSED' : 'ENOENT',
    `nothing serves the pod's socket; listening there: ${listenersOf(socketOf('pod'))}`);
  // The socket `start` bound before it was killed is left unserved when no member took it, as without a pool.
  if (answered) t.false(existsSync(socketOf('pod')), 'the shim that took the pod removed its socket');
  const again = start('pod-again');
  t.is(again.status, 0);
  t.is(again.address, `unix://${socketOf('pod')}`);
  t.not(again.pid, member!.pid, 'the pod\'s next start gets a shim of its own');
  const other = start('other');
  t.is(other.status, 0);
  t.is(other.address, `unix://${socketOf('other')}`);
  t.true(existsSync(`/proc/${other.pid}`), 'another pod gets a shim that serves it');
  t.deepEqual(pidsWith(namespace, '-id pod '), [], 'no process is left with the killed start\'s container');
  t.deepEqual(poolMembers(dir).filter((m) => m.pid === member!.pid), [], 'the pool does not list it');
});

test('a VM member that cannot keep a VM says why in `runbox pool`, and exits', async (t) => {
  const dir = privatePool(t);
  const templates = mkdtempSync('/tmp/rbx-templates-');
  t.teardown(() => rmSync(templates, { recursive: true, force: true }));
  const member = (env: NodeJS.ProcessEnv) => spawnSync('node', [join(PROJECT, 'bin', 'pool-worker.cjs'), 'shimvm', '60', dir], {
    env: { PATH: process.env.PATH, RUNBOX_QEMU_TEMPLATE_DIR: templates, RUNBOX_QEMU_ACCEL: 'tcg', ...env }, encoding: 'utf8', timeout: 60_000,
  });
  const pool = () => {
    const shown = spawnSync(join(PROJECT, 'bin', 'runbox'), ['pool', '--format', 'json'], { env: { ...process.env, RUNBOX_POOL_DIR: dir }, encoding: 'utf8' });
    return JSON.parse(shown.stdout) as { members: unknown[]; lastFailures: Record<string, { pid: number; message: string }> };
  };

  const off = member({ RUNBOX_QEMU_TEMPLATE: 'off' });
  t.is(off.status, 1);
  t.is(pool().lastFailures.shimvm?.pid, off.pid);
  t.is(pool().lastFailures.shimvm?.message, 'no VM can wait: VM templates are off (RUNBOX_QEMU_TEMPLATE)');
  t.deepEqual(pool().members, [], 'it did not join');

  const broken = member({ RUNBOX_QEMU: '/bin/false' });
  t.is(broken.status, 1);
  t.is(pool().lastFailures.shimvm?.pid, broken.pid, 'the last failure replaces the one before');
  t.regex(pool().lastFailures.shimvm!.message, /\S/);
  const table = spawnSync(join(PROJECT, 'bin', 'runbox'), ['pool'], { env: { ...process.env, RUNBOX_POOL_DIR: dir }, encoding: 'utf8' }).stdout;
  t.true(table.includes(`the last shimvm member that could not join (pid ${broken.pid}, `), table);
});
