import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, RUNBOX, TestEnv } from './helpers/runbox.js';
import { FIXTURE_OCI, fixtureLayer, multiArchLayout, push, startFaultProxy, startRegistry } from './helpers/registry.js';

function files(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

async function setup(t: ExecutionContext) {
  const env = new TestEnv(t);
  const registry = await startRegistry(t);
  push(registry, FIXTURE_OCI, 'latest', 'busybox:latest');
  const proxy = await startFaultProxy(t, registry.host);
  return { env, registry, proxy, ref: `${proxy.host}/busybox:latest`, store: join(env.dir, 'store') };
}

test('a connection cut mid-blob is resumed with a Range request from where it broke', async (t) => {
  const { env, proxy, ref, store } = await setup(t);
  proxy.only = fixtureLayer();
  proxy.fault = { kind: 'cut', afterBytes: 300_000, times: 2 };
  const pulled = await env.run(['image', 'pull', '--store', store, ref]);
  t.is(pulled.code, 0, pulled.stderr);
  const attempts = proxy.requests.filter((r) => r.path.endsWith(fixtureLayer()));
  t.deepEqual(attempts.map((r) => r.status), [200, 206, 206]);
  t.is(attempts[0]!.range, undefined);
  // Each attempt asks from the byte it had received up to (what was in flight when the cut came is lost).
  const starts = attempts.slice(1).map((r) => Number(/^bytes=(\d+)-$/.exec(r.range ?? '')?.[1]));
  t.true(starts[0]! > 0 && starts[0]! <= 300_000, `first resume from ${starts[0]}`);
  t.true(starts[1]! > starts[0]! && starts[1]! <= starts[0]! + 300_000, `second resume from ${starts[1]}`);
  const ran = await env.run(['run', '--image', ref, '--store', store, '--rm', env.id(), '--', 'echo', 'resumed-ok']);
  t.is(ran.stdout, 'resumed-ok\n', ran.stderr);
});

test('corrupted bytes are refused and nothing is stored', async (t) => {
  const { env, proxy, ref, store } = await setup(t);
  proxy.fault = { kind: 'corrupt', times: 100 };
  const pulled = await env.run(['image', 'pull', '--store', store, ref]);
  t.is(pulled.code, 1);
  t.regex(errorMessage(pulled.stderr), new RegExp(`^image ${ref}: digest mismatch: expected sha256:[0-9a-f]{64}, got sha256:[0-9a-f]{64}$`));
  t.deepEqual(files(join(store, 'blobs', 'sha256')), []);
  t.deepEqual(files(join(store, 'ingest')).filter((name) => !name.endsWith('.lock')), []);
  t.is((await env.run(['image', 'ls', '--store', store, '--format', 'json'])).stdout, '[]\n');
});

test('run --image with a corrupted layer fails naming the image, and leaves no bundle and no container', async (t) => {
  const { env, proxy, ref, store } = await setup(t);
  proxy.only = fixtureLayer();
  proxy.fault = { kind: 'corrupt', times: 100 };
  const id = env.id();
  const ran = await env.run(['run', '--image', ref, '--store', store, '--rm', id, '--', 'true']);
  t.is(ran.code, 1);
  t.regex(errorMessage(ran.stderr), new RegExp(`^image ${ref}: digest mismatch: expected ${fixtureLayer()}, got sha256:[0-9a-f]{64}$`));
  t.deepEqual(files(join(store, 'bundles')), []);
  t.false(files(join(store, 'blobs', 'sha256')).includes(fixtureLayer().slice(7)));
  t.is((await env.run(['list', '-q'])).stdout, '');
});

// The timeout is generous: on a loaded machine a healthy request can take seconds; the stall lasts for ever.
test('a blob that stops arriving is abandoned after --registry-timeout and resumed', async (t) => {
  const { env, proxy, ref, store } = await setup(t);
  proxy.only = fixtureLayer();
  proxy.fault = { kind: 'stall', afterBytes: 200_000, times: 1 };
  const pulled = await env.run(['image', 'pull', '--store', store, '--registry-timeout', '10', ref]);
  t.is(pulled.code, 0, pulled.stderr);
  const attempts = proxy.requests.filter((r) => r.path.endsWith(fixtureLayer()));
  t.is(attempts.length, 2);
  t.regex(attempts[1]!.range ?? '', /^bytes=\d+-$/);
});

test('a manifest whose mediaType disagrees with its Content-Type is refused', async (t) => {
  const { env, registry, proxy, store } = await setup(t);
  push(registry, multiArchLayout(t).layout, 'multi', 'multi:1', { all: true });
  const ref = `${proxy.host}/multi:1`;
  proxy.fault = { kind: 'manifest-type', contentType: 'application/vnd.oci.image.manifest.v1+json' };
  const pulled = await env.run(['image', 'pull', '--store', store, ref]);
  t.is(pulled.code, 1);
  t.is(errorMessage(pulled.stderr), `image ${ref}: manifest 1 says it is application/vnd.oci.image.index.v1+json but was served as application/vnd.oci.image.manifest.v1+json`);
  t.deepEqual(files(join(store, 'blobs', 'sha256')), []);
});

test('a registry answering 500 is retried with backoff', async (t) => {
  const { env, proxy, ref, store } = await setup(t);
  proxy.fault = { kind: 'error500', times: 2 };
  const pulled = await env.run(['image', 'pull', '--store', store, ref]);
  t.is(pulled.code, 0, pulled.stderr);
  const blobStatuses = proxy.requests.filter((r) => r.path.includes('/blobs/')).map((r) => r.status);
  t.deepEqual(blobStatuses, [500, 500, 200, 200]);

  proxy.fault = { kind: 'error500', times: 100 };
  const broken = await env.run(['image', 'pull', '--store', join(env.dir, 'other'), ref]);
  // Each of the 5 attempts at the download was a request the client tried 5 times.
  t.is(errorMessage(broken.stderr), `image ${ref}: ${proxy.host} answered 500 Internal Server Error (tried 25 times)`);
});

test('a blob redirect is followed without the Authorization header', async (t) => {
  const { env, registry: open } = await setup(t);
  const secured = await startRegistry(t, { storage: open.storage, auth: { htpasswd: { username: 'carol', password: 'redirect-pass' } } });
  const front = await startFaultProxy(t, secured.host);
  // Blob downloads go elsewhere, as registries send them to their storage: here the unauthenticated registry
  // over the same storage, behind a second proxy that records what reaches it.
  const storage = await startFaultProxy(t, open.host);
  front.fault = { kind: 'redirect', to: `http://${storage.host}`, times: 100 };
  const config = join(env.dir, 'docker');
  mkdirSync(config);
  writeFileSync(join(config, 'config.json'), JSON.stringify({ auths: { [front.host]: { auth: Buffer.from('carol:redirect-pass').toString('base64') } } }));
  const pulled = await env.run(['image', 'pull', '--store', join(env.dir, 'store'), `${front.host}/busybox:latest`], { env: { ...process.env, DOCKER_CONFIG: config } });
  t.is(pulled.code, 0, pulled.stderr);
  t.deepEqual(front.requests.filter((r) => r.path.includes('/blobs/')).map((r) => [r.status, r.authorization]), [[307, true], [307, true]]);
  t.deepEqual(storage.requests.map((r) => [r.status, r.authorization]), [[200, false], [200, false]]);
});

test('a pull killed with SIGKILL leaves no blob; the next pull re-verifies the partial download and succeeds', async (t) => {
  const { env, proxy, ref, store } = await setup(t);
  proxy.fault = { kind: 'stall', afterBytes: 400_000 };
  const child = spawn(RUNBOX, ['image', 'pull', '-q', '--store', store, ref], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const ingest = join(store, 'ingest');
  const partialOf = (): string | undefined => files(ingest).find((name) => name.endsWith('.partial'));
  for (let i = 0; i < 400; i++) {
    const partial = partialOf();
    if (partial && statSync(join(ingest, partial)).size >= 400_000) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  const partial = partialOf();
  t.truthy(partial, 'the download had started');
  const layerDigest = `sha256:${partial!.slice('sha256-'.length, -'.partial'.length)}`;
  t.false(files(join(store, 'blobs', 'sha256')).includes(layerDigest.slice(7)));

  // Damage the partial file: a resumed pull must notice, throw the bytes away and download them again.
  const fd = openSync(join(ingest, partial!), 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, 1000);
  byte[0] ^= 0xff;
  writeSync(fd, byte, 0, 1, 1000);
  closeSync(fd);

  proxy.fault = undefined;
  const before = proxy.requests.length;
  const again = await env.run(['image', 'pull', '--store', store, ref]);
  t.is(again.code, 0, again.stderr);
  const layerRequests = proxy.requests.slice(before).filter((r) => r.path.endsWith(layerDigest));
  t.deepEqual(layerRequests.map((r) => r.range), ['bytes=400000-', undefined]);
  t.deepEqual(files(ingest).filter((name) => !name.endsWith('.lock')), []);
  const ran = await env.run(['run', '--image', ref, '--store', store, '--rm', env.id(), '--', 'echo', 'after-kill-ok']);
  t.is(ran.stdout, 'after-kill-ok\n', ran.stderr);
});

test('concurrent pulls of one image download each blob once', async (t) => {
  const { env, proxy, ref, store } = await setup(t);
  const results = await Promise.all([1, 2, 3].map(() => env.run(['image', 'pull', '-q', '--store', store, ref])));
  for (const result of results) t.is(result.code, 0, result.stderr);
  const blobGets = proxy.requests.filter((r) => r.path.includes('/blobs/')).map((r) => r.path);
  t.is(blobGets.length, new Set(blobGets).size);
  t.is(new Set(blobGets).size, 2);
});
