// Lazy loading under the emulated driver, through the CLI: `image pull --lazy`, `bundle --lazy`, `run --image
// --lazy` on eStargz images written by ctr-remote, served by the store's lazy loader over FUSE and an overlay.
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PrivateContainerd } from './helpers/containerd.js';
import { layoutWithFiles, pushEstargz, seededBytes } from './helpers/estargz.js';
import { unmountUnder } from '../src/host/mounts.js';
import { lazyScratch, loaderGone, loaderProcesses, loopDevicesOf } from './helpers/lazy.js';
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
  return lazyScratch(t).store;
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

/** A container of `image` (lazily, no background fetch) that sleeps, in a bundle under the test's directory. */
async function sleeper(t: { teardown(f: () => unknown): void }, env: TestEnv, store: string, image: string): Promise<string> {
  const bundle = join(env.dir, `bundle-${env.id('b')}`);
  t.teardown(() => unmountUnder(bundle));
  const made = await env.run(['bundle', '--image', image, '--lazy', '--lazy-background-rate', '0', '--store', store, bundle, '--', 'sleep', '1000']);
  if (made.code !== 0) throw new Error(made.stderr);
  const id = env.id();
  const started = await env.run(['run', '-d', '--bundle', bundle, id]);
  if (started.code !== 0) throw new Error(started.stderr);
  return id;
}

test('the lazy loader\'s server killed with SIGKILL during a read is restarted and the read completes', async (t) => {
  const env = new TestEnv(t);
  const store = storeFor(t);
  const proxy = await startFaultProxy(t, registry.host);
  const image = `${proxy.host}/lazy/app:1`;
  const id = await sleeper(t, env, store, image);
  const [server] = loaderProcesses(store).server;
  t.truthy(server);
  let release!: () => void;
  proxy.gate = new Promise((resolve) => (release = resolve));
  const reading = env.run(['exec', id, 'md5sum', '/data/big']);
  for (let i = 0; i < 200 && proxy.held === 0; i++) await sleep(50);
  t.true(proxy.held > 0, 'the read waits for the registry');
  process.kill(server!, 'SIGKILL');
  for (let i = 0; i < 100 && !loaderProcesses(store).server.some((pid) => pid !== server); i++) await sleep(50);
  t.true(loaderProcesses(store).server.some((pid) => pid !== server), 'a new server runs');
  release();
  const read = await reading;
  t.is(read.code, 0, read.stderr);
  t.is(read.stdout, `${BIG_MD5}  /data/big\n`);
  // And later reads too.
  const again = await env.run(['exec', id, 'cat', '/data/small.txt']);
  t.is(again.stdout, 'small file\n');
  t.regex(readFileSync(join(store, 'lazy', 'loader.log'), 'utf8'), /took over the connection/);
  await env.run(['delete', '-f', id]);
});

test('two containers of one image share one cache: the second reads what the first fetched without asking the registry', async (t) => {
  const env = new TestEnv(t);
  const store = storeFor(t);
  const proxy = await startFaultProxy(t, registry.host);
  const image = `${proxy.host}/lazy/app:1`;
  const first = await sleeper(t, env, store, image);
  const second = await sleeper(t, env, store, image);
  t.is(loaderProcesses(store).server.length, 1, 'one loader for the store');
  const one = await env.run(['exec', first, 'md5sum', '/data/big']);
  t.is(one.stdout, `${BIG_MD5}  /data/big\n`);
  const before = proxy.requests.length;
  const two = await env.run(['exec', second, 'md5sum', '/data/big']);
  t.is(two.stdout, `${BIG_MD5}  /data/big\n`);
  t.is(proxy.requests.length, before, 'no request for the second container');
  await env.run(['delete', '-f', first]);
  await env.run(['delete', '-f', second]);
});

test('registry stopped after start: what is local keeps working, a missing chunk is EIO after the retries, never a hang', async (t) => {
  const env = new TestEnv(t);
  const store = storeFor(t);
  const own = await startRegistry(t, { storage: registry.storage });
  const id = await sleeper(t, env, store, `${own.host}/lazy/app:1`);
  t.is((await env.run(['exec', id, 'cat', '/data/small.txt'])).stdout, 'small file\n');
  const { execFileSync } = await import('node:child_process');
  execFileSync('fuser', ['-k', '-KILL', `${own.host.split(':')[1]}/tcp`], { stdio: 'ignore' });
  t.is((await env.run(['exec', id, 'cat', '/data/small.txt'])).stdout, 'small file\n', 'local data still reads');
  const missing = await env.run(['exec', id, 'md5sum', '/data/big'], { timeout: 90_000 });
  t.not(missing.code, 0, JSON.stringify(missing));
  t.regex(missing.stderr + missing.stdout, /Input\/output error/, JSON.stringify(missing));
  await env.run(['delete', '-f', id]);
});

test('a layer that is not eStargz is pulled whole and served from the same lazy rootfs', async (t) => {
  const env = new TestEnv(t);
  const store = storeFor(t);
  const id = env.id();
  const result = await env.run(['run', '--image', `${registry.host}/plain/busybox:1`, '--lazy', '--store', store, '--rm', id, '--', 'sh', '-c', 'cat /etc/hostname; ls -l /bin/sh']);
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /^runbox\n.*\/bin\/sh -> \/bin\/busybox\n$/s);
  t.deepEqual(await loaderGone(store), { processes: [], mounts: [], loops: [] });
});

test('a CLI killed with SIGKILL while it made a lazy bundle leaves nothing that the next bundle does not take down', async (t) => {
  const env = new TestEnv(t);
  const store = storeFor(t);
  const proxy = await startFaultProxy(t, registry.host);
  const image = `${proxy.host}/lazy/app:1`;
  t.is((await env.run(['image', 'pull', '--lazy', '-q', '--store', store, image])).code, 0);
  // The bundle's config.json needs /etc/passwd from the image: held, the CLI waits there with its mounts made.
  let release!: () => void;
  proxy.gate = new Promise((resolve) => (release = resolve));
  const parent = join(env.dir, 'bundles');
  const { spawn } = await import('node:child_process');
  const cli = spawn('bin/runbox', ['bundle', '--image', image, '--lazy', '--lazy-background-rate', '0', '--store', store, join(parent, 'first')], { stdio: 'ignore' });
  for (let i = 0; i < 300 && proxy.held === 0; i++) await sleep(50);
  t.true(proxy.held > 0);
  cli.kill('SIGKILL');
  await new Promise((resolve) => cli.once('exit', resolve));
  release();
  proxy.gate = undefined;
  t.true(loopDevicesOf(store).length > 0, 'its rootfs is still mounted, in its partial bundle');
  const second = join(parent, 'second');
  t.teardown(() => unmountUnder(second));
  const made = await env.run(['bundle', '--image', image, '--lazy', '--store', store, second]);
  t.is(made.code, 0, made.stderr);
  t.deepEqual(readdirSync(parent), ['second'], 'the partial bundle was taken down and removed');
  unmountUnder(second);
  t.deepEqual(await loaderGone(store), { processes: [], mounts: [], loops: [] });
});

test('image stats tells per layer what was fetched on demand, prefetched and in the background, hits and waits; a terminal is told of the lazy start', async (t) => {
  const env = new TestEnv(t);
  const store = storeFor(t);
  const image = `${registry.host}/lazy/app:1`;
  const bundle = join(env.dir, 'bundle');
  t.teardown(() => unmountUnder(bundle));
  // On a terminal (script(1)), the bundle's maker says what it waited for and where to watch the rest.
  const { runCommand, RUNBOX } = await import('./helpers/runbox.js');
  const made = await runCommand('script', ['-qec', `'${RUNBOX}' --root '${env.root}' bundle --image ${image} --lazy --lazy-background-rate 0 --store '${store}' '${bundle}' -- md5sum /data/big`, '/dev/null']);
  t.is(made.code, 0, made.stdout);
  t.regex(made.stdout, /lazy\/app:1: started after prefetching 0 B of [\d.]+ MB; the rest comes on demand and in the background \(runbox image stats --follow /);
  const ran = await env.run(['run', '--bundle', bundle, env.id()]);
  t.is(ran.stdout, `${BIG_MD5}  /data/big\n`);
  const json = await env.run(['image', 'stats', '--store', store, '--format', 'json', image]);
  t.is(json.code, 0, json.stderr);
  const stats = JSON.parse(json.stdout) as { layers: Array<{ size: number; lazy: boolean; stats: { fetched: { demand: number; prefetch: number; background: number }; hits: number; misses: number; waits: number } }> };
  const app = stats.layers.at(-1)!;
  t.true(app.lazy);
  t.true(app.stats.fetched.demand >= BIG.length * 0.9 && app.stats.fetched.demand <= app.size, 'the file read, fetched on demand');
  t.is(app.stats.fetched.background, 0);
  t.true(app.stats.misses > 0 && app.stats.waits > 0);
  const table = await env.run(['image', 'stats', '--store', store, image]);
  t.regex(table.stdout, /^LAYER\s+SIZE\s+FETCHED\s+SHARE\s+ON-DEMAND\s+PREFETCH\s+BACKGROUND\s+HITS\s+MISSES\s+WAIT AVG\s+WAIT MAX\n/);
  t.regex(table.stdout, /\n[0-9a-f]{12}\s+9\.4 MB\s+9\.4 MB\s+100%\s+9\.4 MB\s+0 B\s+0 B\s+\d+\s+\d+\s+\d+ ms\s+\d+ ms\n/);
});

/** The background fetch's progress in the loader's statistics file of the store's only image. */
function backgroundOf(store: string): { done: number; total: number; failed: number; paused?: string } | undefined {
  const dir = join(store, 'lazy', 'stats');
  const [file] = existsSync(dir) ? readdirSync(dir) : [];
  if (!file) return undefined;
  try {
    return (JSON.parse(readFileSync(join(dir, file), 'utf8')) as { background?: { done: number; total: number; failed: number; paused?: string } }).background;
  } catch {
    return undefined; // being replaced
  }
}

function blobBytes(store: string): number {
  let sum = 0;
  const root = join(store, 'blobs');
  for (const algorithm of readdirSync(root)) for (const hex of readdirSync(join(root, algorithm))) sum += statSync(join(root, algorithm, hex)).size;
  return sum;
}

test('the background fetch stays within the store\'s quota and pauses there; what it left is read on demand', async (t) => {
  const env = new TestEnv(t);
  const store = storeFor(t);
  const image = `${registry.host}/lazy/app:1`;
  t.is((await env.run(['image', 'pull', '--lazy', '-q', '--store', store, image])).code, 0);
  const quota = blobBytes(store) + 3 * 1024 * 1024;
  const bundle = join(env.dir, 'bundle');
  t.teardown(() => unmountUnder(bundle));
  const made = await env.run(['bundle', '--image', image, '--lazy', '--quota', String(quota), '--store', store, bundle, '--', 'sleep', '1000']);
  t.is(made.code, 0, made.stderr);
  const id = env.id();
  t.is((await env.run(['run', '-d', '--bundle', bundle, id])).code, 0);
  let background = backgroundOf(store);
  for (let i = 0; i < 300 && !background?.paused; i++, background = backgroundOf(store)) await sleep(100);
  t.regex(background?.paused ?? JSON.stringify(background), new RegExp(`the store's quota of ${quota} bytes is reached`));
  t.true(background!.done < background!.total, 'the rest is not fetched');
  t.true(blobBytes(store) <= quota, `${blobBytes(store)} bytes stored, quota ${quota}`);
  const table = await env.run(['image', 'stats', '--store', store, image]);
  t.regex(table.stdout, /paused: the store's quota of \d+ bytes is reached; the rest comes on demand/);
  const read = await env.run(['exec', id, 'md5sum', '/data/big']);
  t.is(read.stdout, `${BIG_MD5}  /data/big\n`, read.stderr);
  await env.run(['delete', '-f', id]);
});

test('a restarted lazy loader goes on with the background fetch where the killed one left it', async (t) => {
  const env = new TestEnv(t);
  const store = storeFor(t);
  const image = `${registry.host}/lazy/app:1`;
  const bundle = join(env.dir, 'bundle');
  t.teardown(() => unmountUnder(bundle));
  // About 9 s for the big file at this rate: the server is killed well before the end.
  const made = await env.run(['bundle', '--image', image, '--lazy', '--lazy-background-rate', '1M', '--store', store, bundle, '--', 'sleep', '1000']);
  t.is(made.code, 0, made.stderr);
  const id = env.id();
  t.is((await env.run(['run', '-d', '--bundle', bundle, id])).code, 0);
  let background = backgroundOf(store);
  for (let i = 0; i < 300 && !(background && background.done > 0); i++, background = backgroundOf(store)) await sleep(100);
  t.true(background !== undefined && background.done > 0 && background.done < background.total, JSON.stringify(background));
  const [server] = loaderProcesses(store).server;
  process.kill(server!, 'SIGKILL');
  for (let i = 0; i < 100 && !loaderProcesses(store).server.some((pid) => pid !== server); i++) await sleep(50);
  t.true(loaderProcesses(store).server.some((pid) => pid !== server), 'a new server runs');
  for (let i = 0; i < 600 && !(background && background.done >= background.total && background.total > 0 && loaderProcesses(store).server[0] !== server); i++, background = backgroundOf(store)) await sleep(100);
  t.is(background?.done, background?.total, JSON.stringify(background));
  t.is(background?.failed, 0);
  const read = await env.run(['exec', id, 'md5sum', '/data/big']);
  t.is(read.stdout, `${BIG_MD5}  /data/big\n`, read.stderr);
  const json = JSON.parse((await env.run(['image', 'stats', '--store', store, '--format', 'json', image])).stdout) as { layers: Array<{ stats: { fetched: { demand: number } } }> };
  t.is(json.layers.at(-1)!.stats.fetched.demand, 0, 'every chunk came in the background');
  await env.run(['delete', '-f', id]);
});
