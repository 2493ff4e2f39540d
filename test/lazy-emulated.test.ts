// Lazy loading under the emulated driver, through the CLI: `image pull --lazy`, `bundle --lazy`, `run --image
// --lazy` on eStargz images written by ctr-remote, served by the store's lazy loader over FUSE and an overlay.
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PrivateContainerd } from './helpers/containerd.js';
import { layoutWithFiles, pushEstargz, seededBytes } from './helpers/estargz.js';
import { unmountUnder } from '../src/host/mounts.js';
import { loaderGone, stopLoader } from './helpers/lazy.js';
import { FIXTURE_OCI, push, startFaultProxy, startRegistry, type Registry } from './helpers/registry.js';
import { TestEnv, processesMarked } from './helpers/runbox.js';
import { cleanupList } from './helpers/teardown.js';

const BIG = seededBytes(9 * 1024 * 1024 + 123, 11);
const BIG_MD5 = createHash('md5').update(BIG).digest('hex');
const setup = cleanupList();
let registry: Registry;

test.before(async () => {
  const containerd = await PrivateContainerd.start(setup);
  registry = await startRegistry(setup);
  await pushEstargz(containerd, registry, layoutWithFiles(setup, { 'data/big': BIG, 'data/small.txt': Buffer.from('small file\n') }), 'lazy/app:1');
  push(registry, FIXTURE_OCI, 'latest', 'plain/busybox:1');
});
test.after.always(() => setup.run());

function storeFor(t: { teardown(f: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-lazy-'));
  const store = join(dir, 'store');
  t.teardown(async () => {
    await stopLoader(store);
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

test('run --image --lazy --rm runs a ctr-remote eStargz image, and leaves nothing once it is done', async (t) => {
  const env = new TestEnv(t);
  const store = storeFor(t);
  const id = env.id();
  const result = await env.run(['run', '--image', `${registry.host}/lazy/app:1`, '--lazy', '--store', store, '--rm', id, '--', 'sh', '-c', 'cat /data/small.txt; md5sum /data/big; echo written > /tmp/new; cat /tmp/new'], { env: { ...process.env, RUNBOX_TEST_MARK: id } });
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, `small file\n${BIG_MD5}  /data/big\nwritten\n`);
  t.false(existsSync(join(store, 'bundles', id)), 'the bundle is removed');
  const gone = await loaderGone(store);
  t.deepEqual(gone, { processes: [], mounts: [], loops: [] }, 'the loader ended: no process, mount or loop device left');
  t.deepEqual(await processesMarked(id), []);
  const stats = JSON.parse(readFileSync(join(store, 'lazy', 'stats', readdirSync(join(store, 'lazy', 'stats'))[0]!), 'utf8')) as { layers: Array<{ stats: { hits: number; misses: number } }> };
  t.is(stats.layers.length, 2);
});

test('image pull --lazy fetches the TOCs only; a read of a file not yet fetched waits for its chunk and gets the right bytes', async (t) => {
  const env = new TestEnv(t);
  const store = storeFor(t);
  const proxy = await startFaultProxy(t, registry.host);
  const image = `${proxy.host}/lazy/app:1`;
  const pulled = await env.run(['image', 'pull', '--lazy', '--store', store, '-q', image]);
  t.is(pulled.code, 0, pulled.stderr);
  const ranges = proxy.requests.filter((r) => r.path.includes('/blobs/') && r.range);
  t.is(ranges.length, 2, 'one tail request per layer');
  const bundle = join(env.dir, 'bundle');
  t.teardown(() => unmountUnder(bundle));
  const made = await env.run(['bundle', '--image', image, '--lazy', '--lazy-background-rate', '0', '--store', store, bundle, '--', 'sleep', '1000']);
  t.is(made.code, 0, made.stderr);
  const id = env.id();
  const started = await env.run(['run', '-d', '--bundle', bundle, id]);
  t.is(started.code, 0, started.stderr);
  // Hold the registry's answers, then read a file nothing has fetched yet.
  let release!: () => void;
  proxy.gate = new Promise((resolve) => (release = resolve));
  const reading = env.run(['exec', id, 'md5sum', '/data/big']);
  for (let i = 0; i < 200 && proxy.held === 0; i++) await sleep(50);
  t.true(proxy.held > 0, 'the read waits for a chunk from the registry');
  release();
  const read = await reading;
  t.is(read.code, 0, read.stderr);
  t.is(read.stdout, `${BIG_MD5}  /data/big\n`);
  await env.run(['delete', '-f', id]);
});
