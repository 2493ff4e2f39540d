// Interoperability with containerd/ttrpc, the Go implementation containerd itself uses (Debian's
// golang-github-containerd-ttrpc-dev): a Go client calls runbox's server, runbox's client calls a Go server.
import anyTest, { type TestFn } from 'ava';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { CallContext } from '../src/rpc/service.js';
import { StatusCode } from '../src/rpc/status-code.js';
import { RpcError } from '../src/errors/errors.js';
import { TtrpcClient } from '../src/rpc/ttrpc-client.js';
import { socketDir, TASK, taskServer } from './helpers/rpc.js';

const GOPATH = '/usr/share/gocode';
const source = fileURLToPath(new URL('../../test/helpers/ttrpc-interop/main.go', import.meta.url));
const missing = spawnSync('go', ['version']).status !== 0 ? 'go (golang-go)' : !existsSync(join(GOPATH, 'src/github.com/containerd/ttrpc')) ? 'golang-github-containerd-ttrpc-dev' : undefined;
if (missing) console.log(`rpc-interop: skipped, ${missing} is not installed (scripts/setup.sh installs it)`);

const test = anyTest as TestFn<{ peer: string }>;
const interop = missing ? test.skip : test;

const buildDir = mkdtempSync(join(tmpdir(), 'runbox-ttrpc-go-'));
test.after.always(() => rmSync(buildDir, { recursive: true, force: true }));

test.before(async (t) => {
  if (missing) return;
  t.context.peer = join(buildDir, 'ttrpc-interop');
  // GOPATH mode over Debian's Go sources: no module download, nothing leaves the machine.
  const env: NodeJS.ProcessEnv = { ...process.env, GO111MODULE: 'off', GOPATH, GOFLAGS: '' };
  // Go's build cache lives under HOME; a CI environment without one gets a throw-away cache.
  if (!env.GOCACHE && !env.HOME && !env.XDG_CACHE_HOME) env.GOCACHE = join(buildDir, 'cache');
  await promisify(execFile)('go', ['build', '-o', t.context.peer, source], { env });
});

interop('the Go ttrpc client calls runbox’s server: payloads, metadata, status codes, timeout_nano, 50 calls at once', async (t) => {
  let waitContext: CallContext | undefined;
  const { path } = await taskServer(t, {
    Connect: async ({ id }, context) => ({ shimPid: process.pid, version: `${id}|${(context.metadata['x-test'] ?? []).join(',')}` }),
    async Delete({ id }) {
      throw new RpcError(StatusCode.NOT_FOUND, `task ${id} not found`);
    },
    Wait: (_request, context) =>
      new Promise((_, reject) => {
        waitContext = context;
        context.signal.addEventListener('abort', () => reject(context.signal.reason));
      }),
  });
  const { stdout } = await promisify(execFile)(t.context.peer, ['client', path]);
  const report = JSON.parse(stdout);
  t.deepEqual(report, {
    shimPid: process.pid,
    version: 'from-go|one,two',
    deleteCode: StatusCode.NOT_FOUND,
    deleteMessage: 'task c404 not found',
    waitCode: StatusCode.DEADLINE_EXCEEDED,
    unknownCode: StatusCode.UNIMPLEMENTED,
    concurrent: 50,
  });
  t.true(waitContext!.deadline instanceof Date, 'the Go client sent timeout_nano');
});

interop('runbox’s client calls the Go ttrpc server: payloads, metadata and status codes', async (t) => {
  const path = join(socketDir(t), 'go.sock');
  const server = spawn(t.context.peer, ['server', path], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => server.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    server.stdout.once('data', () => resolve());
    server.once('exit', (code) => reject(new Error(`Go ttrpc server exited with ${code}`)));
  });
  const client = await TtrpcClient.connect(path);
  t.teardown(() => client.close());
  const reply = await client.call(TASK, 'Connect', { id: 'from-ts' }, { metadata: { 'x-test': ['a', 'b'] }, timeoutMs: 10_000 });
  t.deepEqual(reply, { shimPid: server.pid, taskPid: 0, version: 'from-ts|a,b' });
  const notFound = await t.throwsAsync(client.call(TASK, 'Delete', { id: 'c1' }), { instanceOf: RpcError });
  t.is(notFound!.status, StatusCode.NOT_FOUND);
  t.is(notFound!.message, 'task c1 not found');
  const unimplemented = await t.throwsAsync(client.call(TASK, 'Pause', { id: 'c1' }), { instanceOf: RpcError });
  t.is(unimplemented!.status, StatusCode.UNIMPLEMENTED);
  const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => client.call(TASK, 'Connect', { id: `n${i}` })));
  t.deepEqual(
    replies.map((r) => r.version),
    Array.from({ length: 50 }, (_, i) => `n${i}|`),
  );
});
