import test, { type ExecutionContext } from 'ava';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { serveGrpc } from '../src/rpc/grpc-server.js';
import { decodeMessage, encodeMessage } from '../src/rpc/protos.js';
import type { CallContext, ServiceImplementation } from '../src/rpc/service.js';
import { StatusCode } from '../src/rpc/status-code.js';
import { RpcError } from '../src/errors/errors.js';
import { socketDir, until } from './helpers/rpc.js';

const TASK_V3 = 'containerd.task.v3.Task';

/** serveGrpc on a fresh socket, and a plain @grpc/grpc-js client for it. */
async function grpcTask(t: ExecutionContext, implementation: ServiceImplementation) {
  const path = join(socketDir(t), 'grpc.sock');
  const server = await serveGrpc(TASK_V3, implementation, path);
  t.teardown(() => server.close());
  const client = new Client(`unix:${path}`, credentials.createInsecure());
  t.teardown(() => client.close());
  const call = (method: string, requestType: string, responseType: string, request: object, options: { metadata?: Metadata; deadline?: Date } = {}) =>
    new Promise<any>((resolve, reject) => {
      client.makeUnaryRequest(
        `/${TASK_V3}/${method}`,
        (value: object) => encodeMessage(`containerd.task.v3.${requestType}`, value),
        (bytes: Buffer) => decodeMessage(responseType, bytes),
        request,
        options.metadata ?? new Metadata(),
        options.deadline ? { deadline: options.deadline } : {},
        (error: ServiceError | null, response?: unknown) => (error ? reject(error) : resolve(response)),
      );
    });
  return { path, server, call };
}

test('containerd.task.v3.Task over gRPC: a Create roundtrip with metadata from a @grpc/grpc-js client', async (t) => {
  let seen: { request: any; metadata: Record<string, string[]> } | undefined;
  const { path, server, call } = await grpcTask(t, {
    async Create(request, context) {
      seen = { request, metadata: context.metadata };
      return { pid: 99 };
    },
  });
  t.is(lstatSync(path).mode & 0o777, 0o600);
  const metadata = new Metadata();
  metadata.add('containerd-namespace', 'k8s.io');
  const reply = await call('Create', 'CreateTaskRequest', 'containerd.task.v3.CreateTaskResponse', { id: 'g1', rootfs: [{ type: 'bind', source: '/x' }] }, { metadata });
  t.deepEqual(reply, { pid: 99 });
  t.is(seen!.request.id, 'g1');
  t.deepEqual(seen!.request.rootfs, [{ type: 'bind', source: '/x', target: '', options: [] }]);
  t.deepEqual(seen!.metadata['containerd-namespace'], ['k8s.io']);
  await server.close();
  t.throws(() => lstatSync(path), { code: 'ENOENT' });
});

test('gRPC errors carry the RpcError code; unimplemented and streaming methods answer UNIMPLEMENTED', async (t) => {
  const { call } = await grpcTask(t, {
    async Delete() {
      throw new RpcError(StatusCode.FAILED_PRECONDITION, 'task c1 is still running');
    },
    async Start() {
      throw new Error('plain failure');
    },
  });
  const precondition = await t.throwsAsync<ServiceError>(call('Delete', 'DeleteRequest', 'containerd.task.v3.DeleteResponse', { id: 'c1' }));
  t.is(precondition!.code, status.FAILED_PRECONDITION);
  t.is(precondition!.details, 'task c1 is still running');
  const unknown = await t.throwsAsync<ServiceError>(call('Start', 'StartRequest', 'containerd.task.v3.StartResponse', { id: 'c1' }));
  t.is(unknown!.code, status.UNKNOWN);
  t.is(unknown!.details, 'plain failure');
  const unimplemented = await t.throwsAsync<ServiceError>(call('Pause', 'PauseRequest', 'google.protobuf.Empty', { id: 'c1' }));
  t.is(unimplemented!.code, status.UNIMPLEMENTED);
  const streaming = await t.throwsAsync<ServiceError>(call('Events', 'PauseRequest', 'google.protobuf.Empty', {}));
  t.is(streaming!.code, status.UNIMPLEMENTED);
});

test('a gRPC deadline aborts the call signal and the client gets DEADLINE_EXCEEDED', async (t) => {
  let context: CallContext | undefined;
  const { call } = await grpcTask(t, {
    Wait: (_request, callContext) =>
      new Promise((_, reject) => {
        context = callContext;
        callContext.signal.addEventListener('abort', () => reject(callContext.signal.reason));
      }),
  });
  // A first call readies both sides, so that the deadline leaves the server time to receive the next one.
  await t.throwsAsync(call('Pause', 'PauseRequest', 'google.protobuf.Empty', { id: 'warm-up' }));
  const error = await t.throwsAsync<ServiceError>(call('Wait', 'WaitRequest', 'containerd.task.v3.WaitResponse', { id: 'w' }, { deadline: new Date(Date.now() + 2000) }));
  t.is(error!.code, status.DEADLINE_EXCEEDED);
  await until(() => context?.signal.aborted === true, 'the server to abort the call');
  t.true(context!.deadline instanceof Date);
});

test('a gRPC client that cancels or goes away mid-call aborts the call signal', async (t) => {
  const contexts: CallContext[] = [];
  const { path, call } = await grpcTask(t, {
    Wait: (_request, context) =>
      new Promise((_, reject) => {
        contexts.push(context);
        context.signal.addEventListener('abort', () => reject(context.signal.reason));
      }),
    State: async ({ id }) => ({ id }),
  });
  const leaving = new Client(`unix:${path}`, credentials.createInsecure());
  const pending = leaving.makeUnaryRequest(
    `/${TASK_V3}/Wait`,
    (value: object) => encodeMessage('containerd.task.v3.WaitRequest', value),
    (bytes: Buffer) => decodeMessage('containerd.task.v3.WaitResponse', bytes),
    { id: 'w' },
    () => {},
  );
  await until(() => contexts.length === 1, 'the call to start');
  pending.cancel();
  leaving.close();
  await until(() => contexts[0]!.signal.aborted, 'the server to abort the call');
  t.is((contexts[0]!.signal.reason as RpcError).status, StatusCode.CANCELLED);
  t.like(await call('State', 'StateRequest', 'containerd.task.v3.StateResponse', { id: 'next' }), { id: 'next' });
});

test('a malformed gRPC request gets an error status and the server goes on', async (t) => {
  const { path, call } = await grpcTask(t, { State: async ({ id }) => ({ id }) });
  const client = new Client(`unix:${path}`, credentials.createInsecure());
  t.teardown(() => client.close());
  const error = await new Promise<ServiceError>((resolve) =>
    client.makeUnaryRequest(
      `/${TASK_V3}/State`,
      () => Buffer.from([0x0a, 0x7f, 0x01]), // a StateRequest whose id runs past the end
      (bytes: Buffer) => bytes,
      {},
      (failure) => resolve(failure!),
    ),
  );
  t.not(error.code, status.OK);
  t.like(await call('State', 'StateRequest', 'containerd.task.v3.StateResponse', { id: 'ok' }), { id: 'ok' });
});

test('serveGrpc refuses a method the service does not have', async (t) => {
  await t.throwsAsync(serveGrpc(TASK_V3, { Frobnicate: async () => ({}) }, join(socketDir(t), 'never.sock')), { message: /has no unary method Frobnicate/ });
});
