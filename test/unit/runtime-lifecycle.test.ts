// The CLI runtime's state machine on the fake driver: runc's transitions and its errors in every state.
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Errno } from '../../src/errors/errno.js';
import { ErrorCode, RunboxError, SandboxError } from '../../src/errors/errors.js';
import type { DriverCapabilities } from '../../src/sandbox/driver.js';
import { Runtime } from '../../src/runtime/runtime.js';
import { fakeBundle } from '../fakes/fake-bundle.js';
import { FakeDriver } from '../fakes/fake-driver.js';

function setup(t: ExecutionContext, capabilities: Partial<DriverCapabilities> = {}) {
  const { bundle, root } = fakeBundle(t);
  const driver = new FakeDriver(capabilities);
  const runtime = new Runtime({ root, drivers: driver.registry(), processes: driver.processTable() });
  const status = (id: string) => runtime.state(id).status;
  /** A container in `state`, reached through the runtime's own operations. */
  const containerIn = async (id: string, state: 'created' | 'running' | 'paused' | 'stopped') => {
    await runtime.create(id, { bundle, stdio: 'null' });
    if (state === 'created') return;
    await runtime.start(id);
    if (state === 'paused') await runtime.pause(id);
    if (state === 'stopped') driver.process(id).end(0);
  };
  return { bundle, root, driver, runtime, status, containerIn };
}

/** The error `operation` fails with: a RunboxError, whose message the CLI prints as is. */
async function failure(t: ExecutionContext, operation: () => unknown): Promise<RunboxError> {
  const error = await t.throwsAsync(async () => operation(), { instanceOf: RunboxError });
  return error!;
}

test('create, start, kill, delete: created, running, stopped with the exit status, then gone', async (t) => {
  const { runtime, driver, status, bundle, root } = setup(t);
  const record = await runtime.create('c1', { bundle, stdio: 'null' });
  t.is(status('c1'), 'created');
  t.is(runtime.state('c1').pid, record.pid);
  t.is(runtime.state('c1').bundle, bundle);
  await runtime.start('c1');
  t.is(status('c1'), 'running');
  t.deepEqual(await runtime.ps('c1'), [record.pid]);
  await runtime.kill('c1', 15);
  t.is((await driver.process('c1').exited).exitStatus, 143);
  t.is(status('c1'), 'stopped');
  t.is(runtime.state('c1').pid, 0);
  t.deepEqual(await runtime.ps('c1'), []);
  await runtime.delete('c1');
  t.false(existsSync(join(root, 'c1')));
  const gone = await failure(t, () => runtime.state('c1'));
  t.is(gone.message, 'container c1 does not exist');
  t.is(gone.code, ErrorCode.CONTAINER_NOT_FOUND);
  t.is(gone.containerId, 'c1');
});

test('every operation on a missing container says it does not exist; delete --force of one is silent', async (t) => {
  const { runtime } = setup(t);
  for (const operation of [
    () => runtime.state('nope'), () => runtime.start('nope'), () => runtime.kill('nope', 15), () => runtime.delete('nope'),
    () => runtime.pause('nope'), () => runtime.resume('nope'), () => runtime.ps('nope'), () => runtime.wait('nope'),
    () => runtime.exec('nope', { process: { args: ['true'], cwd: '/', user: { uid: 0, gid: 0 } }, stdio: 'null' }), () => runtime.update('nope', {}),
  ]) {
    t.is((await failure(t, operation)).message, 'container nope does not exist');
  }
  await t.notThrowsAsync(runtime.delete('nope', true));
});

test('a second create of an id is refused, and the first container is left as it was', async (t) => {
  const { runtime, bundle, status } = setup(t);
  await runtime.create('c1', { bundle, stdio: 'null' });
  const error = await failure(t, () => runtime.create('c1', { bundle, stdio: 'null' }));
  t.is(error.message, 'container with ID c1 already exists');
  t.is(error.code, ErrorCode.CONTAINER_EXISTS);
  t.is(status('c1'), 'created');
});

test('start: only a created container starts', async (t) => {
  const { runtime, containerIn, status } = setup(t);
  for (const [state, message] of [
    ['running', 'cannot start an already running container'],
    ['paused', 'cannot start an already running container'],
    ['stopped', 'cannot start a container that has stopped'],
  ] as const) {
    await containerIn(state, state);
    t.is((await failure(t, () => runtime.start(state))).message, `container ${state}: ${message}`, state);
    t.is(status(state), state);
  }
});

test('kill: a created, running or paused container is signalled; a stopped one is not running', async (t) => {
  const { runtime, containerIn, driver, status } = setup(t);
  for (const state of ['created', 'running', 'paused'] as const) {
    await containerIn(state, state);
    await runtime.kill(state, 9);
    t.is(status(state), 'stopped', state);
    t.is(driver.process(state).exit?.exitStatus, 137);
  }
  await containerIn('stopped', 'stopped');
  const error = await failure(t, () => runtime.kill('stopped', 9));
  t.is(error.message, 'container stopped: container not running');
  t.is(error.containerId, 'stopped');
});

test('kill: a process the sandbox finds gone is not running', async (t) => {
  const { runtime, containerIn, driver } = setup(t);
  await containerIn('c1', 'running');
  driver.failNext('signal', new SandboxError('process not running', { containerId: 'c1', errno: Errno.ESRCH }));
  t.is((await failure(t, () => runtime.kill('c1', 15))).message, 'container c1: container not running');
});

test('delete: a created, running or paused container is refused without --force and ended with it', async (t) => {
  const { runtime, containerIn, driver, root } = setup(t);
  for (const state of ['created', 'running', 'paused'] as const) {
    await containerIn(state, state);
    t.is((await failure(t, () => runtime.delete(state))).message, `container ${state}: cannot delete container ${state} that is not stopped: ${state}`);
    const init = driver.process(state);
    t.true(init.alive);
    await runtime.delete(state, true);
    t.false(init.alive, state);
    t.false(existsSync(join(root, state)));
  }
  t.deepEqual(runtime.list(), []);
});

test('a container whose init exits by itself is stopped, with pid 0, and deletes without --force', async (t) => {
  const { runtime, containerIn, driver, status } = setup(t);
  await containerIn('c1', 'running');
  driver.process('c1').end(3);
  t.is(status('c1'), 'stopped');
  t.is(runtime.state('c1').pid, 0);
  t.is((await runtime.wait('c1')).exitStatus, 3);
  await runtime.delete('c1');
  t.deepEqual(runtime.list(), []);
});

test('exec runs only in a running container, with args', async (t) => {
  const { runtime, containerIn, driver } = setup(t);
  const process = { args: ['sh', '-c', 'exit 7'], cwd: '/', user: { uid: 0, gid: 0 } };
  for (const state of ['created', 'paused', 'stopped'] as const) {
    await containerIn(state, state);
    t.is((await failure(t, () => runtime.exec(state, { process, stdio: 'null' }))).message, `container ${state}: cannot exec in a ${state} container`);
  }
  await containerIn('c1', 'running');
  t.is((await failure(t, () => runtime.exec('c1', { process: { ...process, args: [] }, stdio: 'null' }))).message, 'container c1: exec: args must not be empty');
  const { execId } = await runtime.exec('c1', { process, stdio: 'null', execId: 'e1' });
  t.is(execId, 'e1');
  driver.process('c1', 'e1').end(7);
  t.is((await runtime.wait('c1', 'e1')).exitStatus, 7);
});

test('pause and resume: running ⇄ paused, and each only from the other', async (t) => {
  const { runtime, containerIn, status } = setup(t);
  await containerIn('c1', 'running');
  t.is((await failure(t, () => runtime.resume('c1'))).message, 'container c1: container not paused');
  await runtime.pause('c1');
  t.is(status('c1'), 'paused');
  t.is((await failure(t, () => runtime.pause('c1'))).message, 'container c1: container not running');
  await runtime.resume('c1');
  t.is(status('c1'), 'running');
  await containerIn('c2', 'created');
  t.is((await failure(t, () => runtime.pause('c2'))).message, 'container c2: container not running');
});

test('pause and update where the driver cannot: said so, and the container stays as it was', async (t) => {
  const { runtime, containerIn, status } = setup(t, { pause: false, cgroups: false });
  await containerIn('c1', 'running');
  t.is((await failure(t, () => runtime.pause('c1'))).message, 'container c1: the fake driver cannot pause containers here');
  t.is(status('c1'), 'running');
  t.is((await failure(t, () => runtime.update('c1', { pids: { limit: 10 } }))).message, 'container c1: the fake driver cannot change resource limits');
});

test('update: a live container takes new limits; a stopped one is refused', async (t) => {
  const { runtime, containerIn, driver } = setup(t);
  await containerIn('c1', 'running');
  await runtime.update('c1', { pids: { limit: 10 } });
  t.true(driver.calls.includes('update c1'));
  await containerIn('c2', 'stopped');
  t.is((await failure(t, () => runtime.update('c2', { pids: { limit: 10 } }))).message, 'container c2: cannot update a stopped container');
});

test('a create that fails in the sandbox names the container once and leaves nothing, whatever its id', async (t) => {
  const { runtime, bundle, driver, root } = setup(t);
  // `+` and `.` mean something else in a regular expression: the message must not be read back with one.
  for (const id of ['a+b', 'a.b', 'plain']) {
    driver.failNext('createContainer', new SandboxError('exec: "/bin/nope": stat /bin/nope: no such file or directory', { containerId: id, errno: Errno.ENOENT }));
    const error = await failure(t, () => runtime.create(id, { bundle, stdio: 'null' }));
    t.is(error.message, `container ${id}: exec: "/bin/nope": stat /bin/nope: no such file or directory`);
    t.is(error.containerId, id);
    t.false(existsSync(join(root, id)), id);
  }
  t.true([...driver.sandboxes.values()].every((sandbox) => !sandbox.alive));
});

test('a start that fails stops the container, names it once, and delete then ends it', async (t) => {
  const { runtime, containerIn, driver, status } = setup(t);
  await containerIn('x+y', 'created');
  driver.failNext('startContainer', new SandboxError('startContainer hook failed', { containerId: 'x+y' }));
  t.is((await failure(t, () => runtime.start('x+y'))).message, 'container x+y: startContainer hook failed');
  t.is(status('x+y'), 'stopped');
  t.true(driver.calls.includes('signal x+y 9 all'));
  await runtime.delete('x+y');
  t.deepEqual(runtime.list(), []);
});

test('a sandbox that cannot be reached: kill signals the live process directly, delete still ends it', async (t) => {
  const { runtime, containerIn, driver, status } = setup(t);
  await containerIn('c1', 'running');
  driver.failNext('connect', new SandboxError('cannot reach the fake agent'));
  await runtime.kill('c1', 15);
  t.is(driver.process('c1').exit?.exitStatus, 143);
  t.is(status('c1'), 'stopped');
  await containerIn('c2', 'running');
  const init = driver.process('c2');
  driver.failNext('connect', new SandboxError('cannot reach the fake agent'));
  await runtime.delete('c2', true);
  t.false(init.alive);
});

test('list: every container with its current status', async (t) => {
  const { runtime, containerIn } = setup(t);
  await containerIn('a', 'created');
  await containerIn('b', 'running');
  await containerIn('c', 'stopped');
  t.deepEqual(runtime.list().map(({ id, status }) => [id, status]).sort(), [['a', 'created'], ['b', 'running'], ['c', 'stopped']]);
});
