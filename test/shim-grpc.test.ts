// The shim in gRPC mode (containerd 2.x: bootstrap JSON version 3, containerd.task.v3.Task), driven by a plain
// @grpc/grpc-js client the way containerd 2.x drives it: start, Create, Start, Wait, Delete, Shutdown.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { defaultSpec } from '../src/oci/default-spec.js';
import { decodeMessage, encodeMessage } from '../src/rpc/protos.js';
import { killShims } from './helpers/containerd.js';
import { FIXTURE_ROOTFS, PROJECT } from './helpers/runbox.js';

const SHIM = join(PROJECT, 'bin', 'containerd-shim-runbox-v2');
const TASK_V3 = 'containerd.task.v3.Task';

interface GrpcShim {
  id: string;
  bundle: string;
  dir: string;
  socket: string;
  bootstrap: { version: number; address: string; protocol: string };
  call(method: string, request: object, responseType: string): Promise<any>;
  /** Shutdown, then the wait for the shim to be gone (its socket removed). */
  shutdown(): Promise<void>;
}

/** A shim started as containerd 2.x starts it, for a bundle of the busybox fixture running `args`; gone after the test. */
function startGrpcShim(t: ExecutionContext, args: string[]): GrpcShim {
  const dir = mkdtempSync('/tmp/rbx-grpc-');
  const bundle = join(dir, 'bundle');
  cpSync(FIXTURE_ROOTFS, join(bundle, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  const id = `g-${process.pid}-${++shims}`;
  const flags = ['-namespace', 'test', '-address', join(dir, 'containerd.sock'), '-publish-binary', '/bin/true', '-id', id];
  const env = { ...process.env, RUNBOX_SHIM_PROTOCOL: 'grpc' };
  t.teardown(async () => {
    // Whatever the test left: a shim still running is killed, then its sandbox goes through the clean-up
    // containerd runs after a shim died (`delete`).
    const pid = Number(spawnSync('cat', [join(bundle, 'shim.pid')], { encoding: 'utf8' }).stdout);
    if (pid) await killShims([pid]);
    spawnSync(SHIM, [...flags, '-bundle', bundle, 'delete'], { cwd: bundle, env });
    rmSync(dir, { recursive: true, force: true });
  });

  const started = spawnSync(SHIM, [...flags, 'start'], { cwd: bundle, env, encoding: 'utf8', input: '' });
  if (started.status !== 0) throw new Error(`shim start: ${started.stderr}`);
  const bootstrap = JSON.parse(started.stdout) as GrpcShim['bootstrap'];
  const socket = bootstrap.address.slice('unix://'.length);
  const client = new Client(`unix:${socket}`, credentials.createInsecure());
  t.teardown(() => client.close());
  const call = (method: string, request: object, responseType: string) => new Promise<any>((resolve, reject) => {
    client.makeUnaryRequest(
      `/${TASK_V3}/${method}`,
      (value: object) => encodeMessage(`containerd.task.v3.${method === 'Create' || method === 'Update' ? `${method}TaskRequest` : `${method}Request`}`, value),
      (bytes: Buffer) => decodeMessage(responseType, bytes),
      request, new Metadata(), {},
      (error: ServiceError | null, response?: unknown) => (error ? reject(error) : resolve(response)),
    );
  });
  const shutdown = async () => {
    await call('Shutdown', { id }, 'google.protobuf.Empty');
    for (let i = 0; i < 50 && existsSync(socket); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  };
  return { id, bundle, dir, socket, bootstrap, call, shutdown };
}
let shims = 0;

test('RUNBOX_SHIM_PROTOCOL=grpc: start prints the v3 bootstrap and task.v3 Create/Start/Wait run a container', async (t) => {
  const { id, bundle, dir, socket, bootstrap, call, shutdown } = startGrpcShim(t, ['sh', '-c', 'exit 5']);
  t.is(bootstrap.version, 3);
  t.is(bootstrap.protocol, 'grpc');
  t.regex(bootstrap.address, /^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);

  const malformed = await call('Create', { id: '', bundle }, 'containerd.task.v3.CreateTaskResponse').catch((error: ServiceError) => error);
  t.is((malformed as ServiceError).code, 3, 'a request without an id is INVALID_ARGUMENT, and the shim goes on');
  const missing = await call('Create', { id, bundle: join(dir, 'nowhere') }, 'containerd.task.v3.CreateTaskResponse').catch((error: ServiceError) => error);
  t.is((missing as ServiceError).code, 3);
  t.regex((missing as ServiceError).details, /config\.json not found/);
  const created = await call('Create', { id, bundle }, 'containerd.task.v3.CreateTaskResponse');
  t.true(created.pid > 0);
  const waiting = call('Wait', { id }, 'containerd.task.v3.WaitResponse');
  await call('Start', { id }, 'containerd.task.v3.StartResponse');
  t.is((await waiting).exitStatus, 5);
  const noResources = await call('Update', { id }, 'google.protobuf.Empty').catch((error: ServiceError) => error);
  t.is((noResources as ServiceError).code, 3, 'an Update without resources is INVALID_ARGUMENT');
  const resources = { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources', value: Buffer.from('{"memory":{"limit":67108864}}') };
  const update = await call('Update', { id, resources }, 'google.protobuf.Empty').catch((error: ServiceError) => error);
  t.is((update as ServiceError).code, 9, 'an exited task cannot be updated: FAILED_PRECONDITION');
  const deleted = await call('Delete', { id }, 'containerd.task.v3.DeleteResponse');
  t.is(deleted.exitStatus, 5);
  const unknown = await call('State', { id }, 'containerd.task.v3.StateResponse').catch((error: ServiceError) => error);
  t.is((unknown as ServiceError).code, 5, 'a deleted task is NOT_FOUND');
  await shutdown();
  t.false(existsSync(socket), 'the shim exits and removes its socket after Shutdown');
});

test('an output FIFO whose reader opens only after the process has exited still gets the output, then EOF', async (t) => {
  const { id, dir, call, shutdown } = startGrpcShim(t, ['echo', 'written before anyone read']);
  const stdout = join(dir, 'stdout');
  t.is(spawnSync('mkfifo', [stdout]).status, 0);
  await call('Create', { id, bundle: join(dir, 'bundle'), stdout }, 'containerd.task.v3.CreateTaskResponse');
  await call('Start', { id }, 'containerd.task.v3.StartResponse');
  const waiting = call('Wait', { id }, 'containerd.task.v3.WaitResponse');
  // A client that opens its end late (ctr opens it in a goroutine of its own): echo is long done by then.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const reader = spawnSync('timeout', ['10', 'cat', stdout], { encoding: 'utf8' });
  t.is(reader.status, 0, 'the reader saw EOF');
  t.is(reader.stdout, 'written before anyone read\n');
  t.is((await waiting).exitStatus, 0);
  await call('Delete', { id }, 'containerd.task.v3.DeleteResponse');
  await shutdown();
});
