// The shim's Task service on the fake driver: Create/Start/Wait/Kill/Delete/Exec/State in every task state, the
// gRPC status of each refusal and of each error from below, and the events containerd is sent, in order.
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Errno } from '../../src/errors/errno.js';
import { RpcError, SandboxError } from '../../src/errors/errors.js';
import { StatusCode } from '../../src/rpc/status-code.js';
import type { CallContext } from '../../src/rpc/service.js';
import type { DriverCapabilities } from '../../src/sandbox/driver.js';
import { TaskService } from '../../src/shim/task-service.js';
import { TASK_STATUS } from '../../src/shim/task-table.js';
import { fakeBundle } from '../fakes/fake-bundle.js';
import { FakeDriver } from '../fakes/fake-driver.js';

const CALL: CallContext = { metadata: {}, signal: new AbortController().signal };

function setup(t: ExecutionContext, capabilities: Partial<DriverCapabilities> = {}) {
  const { dir, bundle } = fakeBundle(t);
  const driver = new FakeDriver(capabilities);
  const events: Array<{ topic: string; event: Record<string, unknown> }> = [];
  const service = new TaskService({
    stateDir: join(dir, 'shim'),
    events: { publish: (topic, event) => events.push({ topic, event: event as Record<string, unknown> }) },
    log: () => {},
    onShutdown: () => {},
    drivers: driver.registry(),
    processes: driver.processTable(),
  });
  t.teardown(() => service.destroy());
  const methods = service.implementation();
  const call = (method: string, request: object): Promise<any> => Promise.resolve().then(() => methods[method]!(request, CALL));
  const create = (id: string, extra: object = {}) =>
    call('Create', { id, bundle, rootfs: [], terminal: false, stdin: '', stdout: '', stderr: '', checkpoint: '', ...extra });
  const status = async (id: string, execId = '') => (await call('State', { id, execId })).status as number;
  /** The topics published so far, with the container (and the exec) each is about. */
  const topics = () => events.map(({ topic, event }) => [topic, event.execId ?? (topic === 'exit' && event.id !== event.containerId ? event.id : '')].filter(Boolean).join(' '));
  const execSpec = (args: string[]) => ({ typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Process', value: Buffer.from(JSON.stringify({ args, cwd: '/' })) });
  return { bundle, driver, service, call, create, status, topics, events, execSpec };
}

/** The RpcError a call fails with, and its status. */
async function refusal(t: ExecutionContext, call: Promise<unknown>, status: StatusCode, message?: string): Promise<void> {
  const error = await t.throwsAsync(call, { instanceOf: RpcError });
  t.is(error!.status, status, error!.message);
  if (message !== undefined) t.is(error!.message, message);
}

test('Create, Start, Kill, Wait, Delete: created → running → stopped, and the events in order', async (t) => {
  const { create, call, status, topics, driver, bundle } = setup(t);
  const { pid } = await create('c1');
  t.is(pid, driver.process('c1').pid);
  t.is(await status('c1'), TASK_STATUS.created);
  t.true(existsSync(join(bundle, 'runbox-shim.json')));
  t.deepEqual(await call('Start', { id: 'c1', execId: '' }), { pid });
  t.is(await status('c1'), TASK_STATUS.running);
  t.deepEqual((await call('Pids', { id: 'c1' })).processes, [{ pid }]);
  await call('Kill', { id: 'c1', execId: '', signal: 9, all: false });
  t.is((await call('Wait', { id: 'c1', execId: '' })).exitStatus, 137);
  const state = await call('State', { id: 'c1', execId: '' });
  t.is(state.status, TASK_STATUS.stopped);
  t.is(state.exitStatus, 137);
  const deleted = await call('Delete', { id: 'c1', execId: '' });
  t.is(deleted.exitStatus, 137);
  t.is(deleted.pid, pid);
  t.false(existsSync(join(bundle, 'runbox-shim.json')));
  t.deepEqual(topics(), ['create', 'start', 'exit', 'delete']);
  await refusal(t, call('State', { id: 'c1', execId: '' }), StatusCode.NOT_FOUND, 'container c1: not found');
});

test('an OOM kill seen while the start is under way is told right after TaskStart, before TaskExit', async (t) => {
  const { create, call, topics, driver } = setup(t);
  await create('c1');
  driver.duringNext('startContainer', () => {
    for (const sandbox of driver.sandboxes.values()) for (const listener of sandbox.oomListeners) listener('c1');
  });
  await call('Start', { id: 'c1', execId: '' });
  await call('Kill', { id: 'c1', execId: '', signal: 9, all: false });
  await call('Wait', { id: 'c1', execId: '' });
  t.deepEqual(topics(), ['create', 'start', 'oom', 'exit']);
});

test('unknown ids are NOT_FOUND and empty ones INVALID_ARGUMENT, for every method that takes one', async (t) => {
  const { call } = setup(t);
  for (const method of ['State', 'Start', 'Kill', 'Delete', 'Wait', 'Pids', 'Pause', 'Resume', 'CloseIO', 'Stats', 'ResizePty']) {
    await refusal(t, call(method, { id: 'nope', execId: '' }), StatusCode.NOT_FOUND);
    await refusal(t, call(method, { id: '', execId: '' }), StatusCode.INVALID_ARGUMENT, `${method}: id must not be empty`);
  }
  await refusal(t, call('Checkpoint', { id: 'nope' }), StatusCode.UNIMPLEMENTED);
});

test('Create of an id in use is ALREADY_EXISTS; a config.json or runtime config that is wrong is INVALID_ARGUMENT', async (t) => {
  const { create, topics } = setup(t);
  await create('c1');
  await refusal(t, create('c1'), StatusCode.ALREADY_EXISTS, 'container c1: already exists');
  const broken = fakeBundle(t, (spec) => (spec.process!.args = []));
  await refusal(t, create('c2', { bundle: broken.bundle }), StatusCode.INVALID_ARGUMENT, 'args must not be empty');
  const { encodeAny } = await import('../../src/rpc/protos.js');
  const options = encodeAny('runtimeoptions.v1.Options', { configPath: join(broken.dir, 'missing.json') });
  const error = await t.throwsAsync(create('c3', { options }), { instanceOf: RpcError });
  t.is(error!.status, StatusCode.INVALID_ARGUMENT);
  t.regex(error!.message, /^runtime config .*missing\.json: /);
  t.deepEqual(topics(), ['create']);
});

test('a Create that fails in the sandbox leaves no task, and the next Create boots it again', async (t) => {
  const { create, call, driver, bundle } = setup(t);
  driver.failNext('boot', new SandboxError('the fake VM did not start'));
  await refusal(t, create('c1'), StatusCode.UNKNOWN, 'the fake VM did not start');
  await refusal(t, call('State', { id: 'c1', execId: '' }), StatusCode.NOT_FOUND);
  driver.failNext('createContainer', new SandboxError('exec: "/bin/nope": no such file', { containerId: 'c1', errno: Errno.ENOENT }));
  await refusal(t, create('c1'), StatusCode.NOT_FOUND, 'container c1: exec: "/bin/nope": no such file');
  t.false(existsSync(join(bundle, 'runbox-shim.json')));
  await create('c1');
  t.is(driver.sandboxes.size, 1, 'one sandbox booted, by the Create that went well');
});

test('Start: only a created task starts; a failed start stops the container', async (t) => {
  const { create, call, status, driver } = setup(t);
  await create('c1');
  await call('Start', { id: 'c1', execId: '' });
  await refusal(t, call('Start', { id: 'c1', execId: '' }), StatusCode.FAILED_PRECONDITION, 'container c1: task is running, not created');
  await create('c2');
  driver.failNext('startContainer', new SandboxError('startContainer hook failed', { containerId: 'c2' }));
  await refusal(t, call('Start', { id: 'c2', execId: '' }), StatusCode.UNKNOWN, 'container c2: startContainer hook failed');
  t.is((await call('Wait', { id: 'c2', execId: '' })).exitStatus, 137);
  t.is(await status('c2'), TASK_STATUS.stopped);
});

test('Kill: a stopped task is NOT_FOUND (process already finished), as is one the sandbox finds gone', async (t) => {
  const { create, call, driver } = setup(t);
  await create('c1');
  await call('Start', { id: 'c1', execId: '' });
  driver.failNext('signal', new SandboxError('process not running', { containerId: 'c1', errno: Errno.ESRCH }));
  await refusal(t, call('Kill', { id: 'c1', execId: '', signal: 15, all: false }), StatusCode.NOT_FOUND, 'container c1: process not running: process already finished');
  driver.process('c1').end(0);
  await call('Wait', { id: 'c1', execId: '' });
  await refusal(t, call('Kill', { id: 'c1', execId: '', signal: 15, all: false }), StatusCode.NOT_FOUND, 'container c1: process already finished');
});

test('Delete: a running or paused task is FAILED_PRECONDITION; a created one ends with 137 and Wait returns', async (t) => {
  const { create, call, topics } = setup(t);
  await create('c1');
  await call('Start', { id: 'c1', execId: '' });
  await refusal(t, call('Delete', { id: 'c1', execId: '' }), StatusCode.FAILED_PRECONDITION, 'container c1: cannot delete a running process');
  await call('Pause', { id: 'c1' });
  await refusal(t, call('Delete', { id: 'c1', execId: '' }), StatusCode.FAILED_PRECONDITION, 'container c1: cannot delete a paused process');
  await create('c2');
  const waited = call('Wait', { id: 'c2', execId: '' });
  t.is((await call('Delete', { id: 'c2', execId: '' })).exitStatus, 137);
  t.is((await waited).exitStatus, 137);
  t.deepEqual(topics(), ['create', 'start', 'paused', 'create', 'delete']);
});

test('Exec: added to a running task, started, exits with its status; refused where it cannot be', async (t) => {
  const { create, call, status, topics, driver, execSpec } = setup(t);
  await create('c1');
  await refusal(t, call('Exec', { id: 'c1', execId: 'e1', spec: execSpec(['true']) }), StatusCode.FAILED_PRECONDITION, 'container c1: cannot exec in a created container');
  await call('Start', { id: 'c1', execId: '' });
  await refusal(t, call('Exec', { id: 'c1', execId: '', spec: execSpec(['true']) }), StatusCode.INVALID_ARGUMENT);
  await refusal(t, call('Exec', { id: 'c1', execId: 'e1', spec: execSpec([]) }), StatusCode.INVALID_ARGUMENT, 'container c1: exec e1: invalid process spec: args must not be empty');
  await call('Exec', { id: 'c1', execId: 'e1', terminal: false, stdin: '', stdout: '', stderr: '', spec: execSpec(['sleep', '1']) });
  await refusal(t, call('Exec', { id: 'c1', execId: 'e1', spec: execSpec(['true']) }), StatusCode.ALREADY_EXISTS, 'container c1: exec e1 already exists');
  t.is(await status('c1', 'e1'), TASK_STATUS.created);
  await refusal(t, call('Kill', { id: 'c1', execId: 'e1', signal: 9, all: false }), StatusCode.FAILED_PRECONDITION, 'container c1: exec e1 was not started');
  await refusal(t, call('State', { id: 'c1', execId: 'e2' }), StatusCode.NOT_FOUND, 'container c1: exec e2 not found');
  const { pid } = await call('Start', { id: 'c1', execId: 'e1' });
  t.is(pid, driver.process('c1', 'e1').pid);
  t.is(await status('c1', 'e1'), TASK_STATUS.running);
  driver.process('c1', 'e1').end(5);
  t.is((await call('Wait', { id: 'c1', execId: 'e1' })).exitStatus, 5);
  t.is(await status('c1'), TASK_STATUS.running, 'the container goes on');
  await call('Delete', { id: 'c1', execId: 'e1' });
  await refusal(t, call('State', { id: 'c1', execId: 'e1' }), StatusCode.NOT_FOUND);
  t.deepEqual(topics(), ['create', 'start', 'exec-added e1', 'exec-started e1', 'exit e1']);
});

test('an exec whose start fails in the sandbox is stopped with 255', async (t) => {
  const { create, call, status, driver, execSpec } = setup(t);
  await create('c1');
  await call('Start', { id: 'c1', execId: '' });
  await call('Exec', { id: 'c1', execId: 'e1', spec: execSpec(['/bin/nope']) });
  driver.failNext('exec', new SandboxError('exec: "/bin/nope": no such file', { containerId: 'c1', errno: Errno.ENOENT }));
  await refusal(t, call('Start', { id: 'c1', execId: 'e1' }), StatusCode.NOT_FOUND, 'container c1: exec: "/bin/nope": no such file');
  t.is(await status('c1', 'e1'), TASK_STATUS.stopped);
  t.is((await call('Wait', { id: 'c1', execId: 'e1' })).exitStatus, 255);
});

test('Pause and Resume: running ⇄ paused with their events; refused from other states and where the driver cannot', async (t) => {
  const { create, call, status, topics, driver } = setup(t);
  await create('c1');
  await refusal(t, call('Pause', { id: 'c1' }), StatusCode.FAILED_PRECONDITION, 'container c1: it is created, not running');
  await call('Start', { id: 'c1', execId: '' });
  await refusal(t, call('Resume', { id: 'c1' }), StatusCode.FAILED_PRECONDITION, 'container c1: it is running, not paused');
  await call('Pause', { id: 'c1' });
  t.is(await status('c1'), TASK_STATUS.paused);
  await call('Resume', { id: 'c1' });
  t.is(await status('c1'), TASK_STATUS.running);
  driver.failNext('pause', new SandboxError('cannot pause: no freezer', { containerId: 'c1', errno: Errno.EOPNOTSUPP }));
  await refusal(t, call('Pause', { id: 'c1' }), StatusCode.FAILED_PRECONDITION, 'container c1: cannot pause: no freezer');
  t.is(await status('c1'), TASK_STATUS.running);
  t.deepEqual(topics(), ['create', 'start', 'paused', 'resumed']);

  const without = setup(t, { pause: false, cgroups: false });
  await without.create('c1');
  await without.call('Start', { id: 'c1', execId: '' });
  await refusal(t, without.call('Pause', { id: 'c1' }), StatusCode.UNIMPLEMENTED, 'the fake driver cannot pause containers');
  const resources = { typeUrl: 'LinuxResources', value: Buffer.from(JSON.stringify({ pids: { limit: 10 } })) };
  await refusal(t, without.call('Update', { id: 'c1', resources }), StatusCode.UNIMPLEMENTED, 'the fake driver cannot change resource limits');
});

test('Update: a live task takes new limits; a stopped one and bad resources are refused', async (t) => {
  const { create, call, driver } = setup(t);
  const resources = (value: unknown) => ({ typeUrl: 'LinuxResources', value: Buffer.from(JSON.stringify(value)) });
  await create('c1');
  await call('Start', { id: 'c1', execId: '' });
  await call('Update', { id: 'c1', resources: resources({ pids: { limit: 10 } }) });
  t.true(driver.calls.includes('update c1'));
  await refusal(t, call('Update', { id: 'c1', resources: resources({ pids: { limit: 'ten' } }) }), StatusCode.INVALID_ARGUMENT);
  driver.process('c1').end(0);
  await call('Wait', { id: 'c1', execId: '' });
  await refusal(t, call('Update', { id: 'c1', resources: resources({ pids: { limit: 10 } }) }), StatusCode.FAILED_PRECONDITION, 'container c1: cannot update a stopped task');
});

test('an init that exits by itself: Wait returns its status, TaskExit is sent, then Delete reports it', async (t) => {
  const { create, call, topics, driver } = setup(t);
  await create('c1');
  await call('Start', { id: 'c1', execId: '' });
  const waited = call('Wait', { id: 'c1', execId: '' });
  driver.process('c1').end(3);
  t.is((await waited).exitStatus, 3);
  t.deepEqual((await call('Pids', { id: 'c1' })).processes, []);
  t.is((await call('Delete', { id: 'c1', execId: '' })).exitStatus, 3);
  t.deepEqual(topics(), ['create', 'start', 'exit', 'delete']);
});

test('Shutdown ends the shim only once no task is left', async (t) => {
  const { dir, bundle } = fakeBundle(t);
  const driver = new FakeDriver();
  let shutdowns = 0;
  const service = new TaskService({
    stateDir: join(dir, 'shim'), events: { publish: () => {} }, log: () => {}, onShutdown: () => shutdowns++,
    drivers: driver.registry(), processes: driver.processTable(),
  });
  const methods = service.implementation();
  await methods.Create!({ id: 'c1', bundle, rootfs: [], terminal: false, stdin: '', stdout: '', stderr: '', checkpoint: '' }, CALL);
  await methods.Shutdown!({}, CALL);
  await new Promise((resolve) => setImmediate(resolve));
  t.is(shutdowns, 0);
  await methods.Delete!({ id: 'c1', execId: '' }, CALL);
  await methods.Shutdown!({}, CALL);
  await new Promise((resolve) => setImmediate(resolve));
  t.is(shutdowns, 1);
  await service.destroy();
  t.false([...driver.sandboxes.values()].some((sandbox) => sandbox.alive));
  t.false(existsSync(join(dir, 'shim')));
});
