import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TtrpcClient } from '../src/rpc/ttrpc-client.js';
import { TtrpcServer } from '../src/rpc/ttrpc-server.js';
import { socketDir, TASK } from './helpers/rpc.js';

const connectImplementation = { Connect: async () => ({ shimPid: process.pid }) };

async function serve(t: import('ava').ExecutionContext, path: string): Promise<TtrpcServer> {
  const server = new TtrpcServer();
  server.addService(TASK, connectImplementation);
  await server.listen(path);
  t.teardown(() => server.close());
  return server;
}

test('the socket is a filesystem socket with mode 0600, removed on close', async (t) => {
  const path = join(socketDir(t), 'shim.sock');
  const server = await serve(t, path);
  const stats = lstatSync(path);
  t.true(stats.isSocket());
  t.is(stats.mode & 0o777, 0o600);
  t.false(readFileSync('/proc/net/unix', 'utf8').includes(`@${path}`), 'not an abstract socket');
  await server.close();
  t.throws(() => lstatSync(path), { code: 'ENOENT' });
});

test('a stale socket file (nobody listening) is replaced', async (t) => {
  const path = join(socketDir(t), 'stale.sock');
  // A socket bound by a process that is gone: the file stays, connecting to it is refused.
  const bound = spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
  t.is(bound.status, 0, bound.stderr.toString());
  t.true(lstatSync(path).isSocket());
  await serve(t, path);
  const client = await TtrpcClient.connect(`unix://${path}`);
  t.teardown(() => client.close());
  t.like(await client.call(TASK, 'Connect', {}), { shimPid: process.pid });
});

test('a socket another server still serves, or a file that is not a socket, is left alone and reported', async (t) => {
  const dir = socketDir(t);
  const live = join(dir, 'live.sock');
  await serve(t, live);
  const second = new TtrpcServer();
  await t.throwsAsync(second.listen(live), { code: 'EADDRINUSE', message: /already served/ });
  const client = await TtrpcClient.connect(live);
  t.teardown(() => client.close());
  t.like(await client.call(TASK, 'Connect', {}), { shimPid: process.pid });

  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'keep me');
  await t.throwsAsync(new TtrpcServer().listen(file), { message: /exists and is not a socket/ });
  t.is(readFileSync(file, 'utf8'), 'keep me');
});

test('a path too long for a unix socket is refused with a clear error', async (t) => {
  const path = join(socketDir(t), 'x'.repeat(120));
  await t.throwsAsync(new TtrpcServer().listen(path), { message: /is longer than \d+ bytes/ });
});

test('a server serves a listening socket inherited as fd 3', async (t) => {
  const path = join(socketDir(t), 'inherited.sock');
  const helper = fileURLToPath(new URL('helpers/rpc-fd-server.js', import.meta.url));
  // python binds and listens, then becomes node with the socket as fd 3: what the shim's `start` hands its child.
  const listenThenExec = 'import socket,os,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o600); s.listen(16); os.dup2(s.fileno(), 3) if s.fileno() != 3 else None; os.set_inheritable(3, True); os.execv(sys.argv[2], sys.argv[2:])';
  const child = spawn('python3', ['-c', listenThenExec, path, process.execPath, helper], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`fd server exited with ${code}`)));
  });
  const client = await TtrpcClient.connect(path);
  t.teardown(() => client.close());
  const reply = await client.call(TASK, 'Connect', { id: 'x' });
  t.is(reply.shimPid, child.pid);
  t.is(reply.version, 'fd-server');
});
