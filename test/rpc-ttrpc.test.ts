import test from 'ava';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeAny, decodeMessage, encodeAny, encodeMessage } from '../src/rpc/protos.js';
import type { CallContext } from '../src/rpc/service.js';
import { StatusCode } from '../src/rpc/status-code.js';
import { RpcError } from '../src/errors/errors.js';
import { TtrpcClient } from '../src/rpc/ttrpc-client.js';
import { TtrpcServer } from '../src/rpc/ttrpc-server.js';
import { encodeFrame, Flags, FrameDecoder, MessageType } from '../src/rpc/ttrpc-frame.js';
import { RawConnection, socketDir, TASK, taskServer, until } from './helpers/rpc.js';

test('a CreateTaskRequest with overlay mounts and options reaches the server whole, and its response comes back', async (t) => {
  let received: any;
  const { client } = await taskServer(t, {
    async Create(request) {
      received = request;
      return { pid: 4242 };
    },
  });
  const options = encodeAny('containerd.events.TaskOOM', { containerId: 'opts' });
  const response = await client.call(TASK, 'Create', {
    id: 'c1',
    bundle: '/run/bundle',
    rootfs: [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/a:/b', 'upperdir=/u', 'workdir=/w'] }],
    stdout: '/fifo/out',
    options,
  });
  t.deepEqual(response, { pid: 4242 });
  t.is(received.id, 'c1');
  t.deepEqual(received.rootfs, [{ type: 'overlay', source: 'overlay', target: '', options: ['lowerdir=/a:/b', 'upperdir=/u', 'workdir=/w'] }]);
  t.is(received.terminal, false);
  t.is(received.stdin, '');
  t.true(Buffer.isBuffer(received.options.value));
  t.is(received.options.typeUrl, 'containerd.events.TaskOOM');
  t.deepEqual(decodeAny(received.options), { containerId: 'opts' });
});

test('responses keep timestamps, enums and repeated messages', async (t) => {
  const exitedAt = { seconds: 1764000000, nanos: 123456789 };
  const { client } = await taskServer(t, {
    State: async ({ id, execId }) => ({ id, execId, pid: 7, status: 3, exitStatus: 137, exitedAt }),
    Pids: async () => ({ processes: [{ pid: 1 }, { pid: 2, info: encodeAny('containerd.events.TaskStart', { pid: 2 }) }] }),
    Wait: async () => ({}),
  });
  const state = await client.call(TASK, 'State', { id: 'c1', execId: 'e1' });
  t.like(state, { id: 'c1', execId: 'e1', pid: 7, status: 3, exitStatus: 137, exitedAt, terminal: false, bundle: '' });
  const pids = await client.call(TASK, 'Pids', { id: 'c1' });
  t.is(pids.processes.length, 2);
  t.is(pids.processes[0].info, null);
  t.deepEqual(decodeAny(pids.processes[1].info), { containerId: '', pid: 2 });
  t.deepEqual(await client.call(TASK, 'Wait', { id: 'c1' }), { exitStatus: 0, exitedAt: null });
});

test('100 calls in flight on one connection are all served concurrently and each gets its own answer', async (t) => {
  const count = 100;
  let arrived = 0;
  let releaseAll!: () => void;
  const allArrived = new Promise<void>((resolve) => (releaseAll = resolve));
  const { client } = await taskServer(t, {
    async Wait({ id }) {
      if (++arrived === count) releaseAll();
      // No call answers before every call has arrived: only concurrent serving can finish.
      await allArrived;
      return { exitStatus: Number(id) };
    },
  });
  const replies = await Promise.all(Array.from({ length: count }, (_, i) => client.call(TASK, 'Wait', { id: String(i) })));
  t.deepEqual(
    replies.map((r) => r.exitStatus),
    Array.from({ length: count }, (_, i) => i),
  );
});

test('a call past its timeout fails with DEADLINE_EXCEEDED and the server aborts its signal', async (t) => {
  let seen: CallContext | undefined;
  const { client } = await taskServer(t, {
    async Wait(_request, context) {
      seen = context;
      await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
      return {};
    },
    State: async ({ id }) => ({ id }),
  });
  const error = await t.throwsAsync(client.call(TASK, 'Wait', { id: 'slow' }, { timeoutMs: 100 }), { instanceOf: RpcError });
  t.is(error!.status, StatusCode.DEADLINE_EXCEEDED);
  // The server's own timer, started when the request arrived (maybe after the client gave up), aborts the call too.
  await until(() => seen?.signal.aborted === true, 'the server to abort the call');
  t.is((seen!.signal.reason as RpcError).status, StatusCode.DEADLINE_EXCEEDED);
  t.true(seen!.deadline instanceof Date);
  // The connection is still good for other calls.
  t.like(await client.call(TASK, 'State', { id: 'after' }), { id: 'after' });
});

test('the server enforces timeout_nano even when the client does not give up', async (t) => {
  const { path } = await taskServer(t, {
    Wait: (_request, context) => new Promise((_, reject) => context.signal.addEventListener('abort', () => reject(new Error('late')))),
  });
  const raw = await RawConnection.open(t, path);
  raw.request(1, { method: 'Wait', payload: encodeMessage('containerd.task.v2.WaitRequest', { id: 'x' }), timeoutNano: 50e6 });
  const reply = await raw.reply(1);
  t.true(reply instanceof RpcError);
  t.is((reply as RpcError).status, StatusCode.DEADLINE_EXCEEDED);
});

test('metadata reaches the implementation with repeated keys grouped', async (t) => {
  let metadata: Record<string, string[]> | undefined;
  const { client } = await taskServer(t, {
    async Connect(_request, context) {
      metadata = context.metadata;
      return { shimPid: process.pid, version: 'test' };
    },
  });
  const reply = await client.call(TASK, 'Connect', { id: 'c' }, { metadata: { 'containerd-namespace-ttrpc': ['ns1'], multi: ['a', 'b'] } });
  t.deepEqual(reply, { shimPid: process.pid, taskPid: 0, version: 'test' });
  t.deepEqual({ ...metadata }, { 'containerd-namespace-ttrpc': ['ns1'], multi: ['a', 'b'] });
});

test('unknown services and methods, and methods left unimplemented, answer UNIMPLEMENTED', async (t) => {
  const { client } = await taskServer(t, { State: async () => ({}) });
  const empty = Buffer.alloc(0);
  for (const [service, method] of [
    ['no.such.Service', 'State'],
    [TASK, 'NoSuchMethod'],
    [TASK, 'Checkpoint'],
  ] as const) {
    const error = await t.throwsAsync(client.invoke(service, method, empty), { instanceOf: RpcError });
    t.is(error!.status, StatusCode.UNIMPLEMENTED, `${service}/${method}`);
    t.true(error!.message.includes(service) || error!.message.includes(method), error!.message);
  }
});

test('an RpcError keeps its code and message; any other throw is UNKNOWN with its message', async (t) => {
  const { client } = await taskServer(t, {
    async Delete() {
      throw new RpcError(StatusCode.NOT_FOUND, 'container c9 not found');
    },
    async Start() {
      throw new Error('something broke');
    },
    Kill: async () => {
      throw 'a string';
    },
  });
  const notFound = await t.throwsAsync(client.call(TASK, 'Delete', { id: 'c9' }), { instanceOf: RpcError });
  t.is(notFound!.status, StatusCode.NOT_FOUND);
  t.is(notFound!.message, 'container c9 not found');
  const unknown = await t.throwsAsync(client.call(TASK, 'Start', { id: 'c9' }), { instanceOf: RpcError });
  t.is(unknown!.status, StatusCode.UNKNOWN);
  t.is(unknown!.message, 'something broke');
  const thrownString = await t.throwsAsync(client.call(TASK, 'Kill', { id: 'c9' }), { instanceOf: RpcError });
  t.is(thrownString!.status, StatusCode.UNKNOWN);
  t.is(thrownString!.message, 'a string');
});

test('malformed requests get INVALID_ARGUMENT replies and the connection keeps working', async (t) => {
  const { path } = await taskServer(t, { State: async ({ id }) => ({ id }) });
  const raw = await RawConnection.open(t, path);
  raw.send(1, MessageType.REQUEST, 0, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
  raw.request(3, { payload: Buffer.from([0x0a, 0x10, 0x01]) }); // a StateRequest whose id runs past the end
  raw.request(4, {}); // even stream ids belong to servers
  raw.request(3, {}); // reused
  raw.send(9, MessageType.DATA, Flags.REMOTE_CLOSED, Buffer.alloc(0)); // data on no stream
  raw.send(11, MessageType.REQUEST, Flags.REMOTE_OPEN, encodeMessage('ttrpc.Request', { service: TASK, method: 'State' }));
  raw.send(13, 0x7f, 0, Buffer.from('a frame type from the future'));
  raw.request(15, { payload: encodeMessage('containerd.task.v2.StateRequest', { id: 'fine' }) });
  const codes = [];
  for (const id of [1, 3, 4, 9, 11]) codes.push(((await raw.reply(id)) as RpcError).status);
  t.deepEqual(codes, [StatusCode.INVALID_ARGUMENT, StatusCode.INVALID_ARGUMENT, StatusCode.INVALID_ARGUMENT, StatusCode.INVALID_ARGUMENT, StatusCode.UNIMPLEMENTED]);
  const fine = await raw.reply(15);
  t.true(Buffer.isBuffer(fine));
  t.is(raw.frames.filter((f) => f.streamId === 13).length, 0);
});

test('a frame over 4 MiB gets RESOURCE_EXHAUSTED on its stream, then the connection is closed; the server goes on', async (t) => {
  const { path, client } = await taskServer(t, { State: async ({ id }) => ({ id }) });
  const raw = await RawConnection.open(t, path);
  const header = Buffer.alloc(10);
  header.writeUInt32BE((4 << 20) + 1, 0);
  header.writeUInt32BE(5, 4);
  header.writeUInt8(MessageType.REQUEST, 8);
  raw.socket.write(header);
  raw.socket.write(Buffer.alloc(64 * 1024, 0x41)); // the start of what it announced, which nobody should buffer
  const reply = await raw.reply(5);
  t.true(reply instanceof RpcError);
  t.is((reply as RpcError).status, StatusCode.RESOURCE_EXHAUSTED);
  t.regex((reply as RpcError).message, /4194305 bytes.*exceeds/);
  await raw.closed;
  t.like(await client.call(TASK, 'State', { id: 'still-serving' }), { id: 'still-serving' });
});

test('a request too large to frame is refused by the client without sending it', async (t) => {
  const { client } = await taskServer(t, { State: async ({ id }) => ({ id }) });
  const error = await t.throwsAsync(client.call(TASK, 'State', { id: 'x'.repeat(5 << 20) }), { instanceOf: RpcError });
  t.is(error!.status, StatusCode.RESOURCE_EXHAUSTED);
  t.like(await client.call(TASK, 'State', { id: 'small' }), { id: 'small' });
});

test('a response over the limit becomes a RESOURCE_EXHAUSTED reply', async (t) => {
  const { client } = await taskServer(t, { State: async () => ({ id: 'y'.repeat(5 << 20) }) });
  const error = await t.throwsAsync(client.call(TASK, 'State', { id: 'x' }), { instanceOf: RpcError });
  t.is(error!.status, StatusCode.RESOURCE_EXHAUSTED);
});

test('a client that disconnects mid-call aborts the call signals; the server keeps serving', async (t) => {
  const started: CallContext[] = [];
  const { path } = await taskServer(t, {
    async Wait(_request, context) {
      started.push(context);
      await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
      throw new Error('aborted');
    },
    State: async ({ id }) => ({ id }),
  });
  const leaving = await TtrpcClient.connect(path);
  const calls = [leaving.call(TASK, 'Wait', { id: 'a' }), leaving.call(TASK, 'Wait', { id: 'b' })];
  await until(() => started.length === 2, 'both calls to start');
  leaving.close();
  for (const call of calls) t.is((await t.throwsAsync(call, { instanceOf: RpcError }))!.status, StatusCode.CANCELLED);
  await until(() => started.every((c) => c.signal.aborted), 'both calls to be aborted');
  t.true(started.every((c) => (c.signal.reason as RpcError).status === StatusCode.CANCELLED));
  const other = await TtrpcClient.connect(path);
  t.teardown(() => other.close());
  t.like(await other.call(TASK, 'State', { id: 'next' }), { id: 'next' });
});

test('calls pending when the server goes away fail with UNAVAILABLE, and so do later ones', async (t) => {
  let started = false;
  const { server, client } = await taskServer(t, {
    Wait: (_request, context) =>
      new Promise((_, reject) => {
        started = true;
        context.signal.addEventListener('abort', () => reject(context.signal.reason));
      }),
  });
  const waiting = client.call(TASK, 'Wait', { id: 'w' });
  await until(() => started, 'the call to start');
  await server.close();
  const error = await t.throwsAsync(waiting, { instanceOf: RpcError });
  t.is(error!.status, StatusCode.UNAVAILABLE);
  t.is(error!.message, 'the ttrpc server is closing');
  const later = await t.throwsAsync(client.call(TASK, 'Wait', { id: 'w2' }), { instanceOf: RpcError });
  t.is(later!.status, StatusCode.UNAVAILABLE);
});

test('on the wire, the client uses odd stream ids from 1 up by 2 and sends timeout_nano and metadata', async (t) => {
  // A server made of bare frames, to see exactly what the client sends.
  const path = join(socketDir(t), 'raw-server.sock');
  const requests: { streamId: number; request: any }[] = [];
  const server = createServer((socket) => {
    const decoder = new FrameDecoder(
      (frame) => {
        const request = decodeMessage('ttrpc.Request', frame.data);
        requests.push({ streamId: frame.streamId, request });
        if (request.method === 'Hang') {
          socket.destroy();
          return;
        }
        const payload = encodeMessage('containerd.task.v2.StateResponse', { id: `reply-${frame.streamId}` });
        socket.write(encodeFrame(frame.streamId, MessageType.RESPONSE, 0, encodeMessage('ttrpc.Response', { payload })));
      },
      () => socket.destroy(),
    );
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(() => server.close());
  const client = await TtrpcClient.connect(path);
  t.teardown(() => client.close());
  for (let i = 0; i < 3; i++) t.like(await client.call(TASK, 'State', { id: String(i) }), { id: `reply-${2 * i + 1}` });
  await client.call(TASK, 'State', { id: 'x' }, { timeoutMs: 1500, metadata: { 'containerd-namespace-ttrpc': ['default'], k: ['v1', 'v2'] } });
  t.deepEqual(
    requests.map((r) => r.streamId),
    [1, 3, 5, 7],
  );
  t.like(requests[3]!.request, { service: TASK, method: 'State', timeoutNano: 1.5e9 });
  t.deepEqual(requests[3]!.request.metadata, [
    { key: 'containerd-namespace-ttrpc', value: 'default' },
    { key: 'k', value: 'v1' },
    { key: 'k', value: 'v2' },
  ]);
  t.is(requests[0]!.request.timeoutNano, 0);
  t.deepEqual(decodeMessage('containerd.task.v2.StateRequest', requests[0]!.request.payload), { id: '0', execId: '' });
  // The server drops the connection mid-call: the pending call fails, and so do later ones.
  const dropped = await t.throwsAsync(client.invoke(TASK, 'Hang', Buffer.alloc(0)), { instanceOf: RpcError });
  t.is(dropped!.status, StatusCode.UNAVAILABLE);
  t.is((await t.throwsAsync(client.call(TASK, 'State', { id: 'late' }), { instanceOf: RpcError }))!.status, StatusCode.UNAVAILABLE);
});

test('an event forwarded as containerd expects it: Envelope with a bare-name Any, namespace in metadata', async (t) => {
  let forwarded: { request: any; metadata: Record<string, string[]> } | undefined;
  const path = join(socketDir(t), 'events.sock');
  const server = new TtrpcServer();
  server.addService('containerd.services.events.ttrpc.v1.Events', {
    async Forward(request, context) {
      forwarded = { request, metadata: context.metadata };
      return {};
    },
  });
  await server.listen(path);
  t.teardown(() => server.close());
  const client = await TtrpcClient.connect(path);
  t.teardown(() => client.close());
  const exitedAt = { seconds: 1764000001, nanos: 5 };
  const envelope = { timestamp: exitedAt, namespace: 'default', topic: '/tasks/exit', event: encodeAny('containerd.events.TaskExit', { containerId: 'c1', id: 'c1', pid: 42, exitStatus: 7, exitedAt }) };
  t.deepEqual(await client.call('containerd.services.events.ttrpc.v1.Events', 'Forward', { envelope }, { metadata: { 'containerd-namespace-ttrpc': ['default'] } }), {});
  t.deepEqual(forwarded!.metadata['containerd-namespace-ttrpc'], ['default']);
  const received = forwarded!.request.envelope;
  t.like(received, { namespace: 'default', topic: '/tasks/exit', timestamp: exitedAt });
  t.is(received.event.typeUrl, 'containerd.events.TaskExit');
  t.deepEqual(decodeAny(received.event), { containerId: 'c1', id: 'c1', pid: 42, exitStatus: 7, exitedAt, exitReason: 0 });
});

test('close() finishes even while a client that never reads has megabytes of replies waiting', async (t) => {
  const big = 'z'.repeat(3 << 20);
  const { server, path } = await taskServer(t, { State: async () => ({ id: big }) });
  const raw = await RawConnection.open(t, path);
  raw.socket.pause();
  for (let id = 1; id < 20; id += 2) raw.request(id, { payload: encodeMessage('containerd.task.v2.StateRequest', { id: 'x' }) });
  await sleep(200);
  await server.close();
  raw.socket.resume();
  await raw.closed;
  t.pass();
});
