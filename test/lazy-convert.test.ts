// Writing eStargz: `runbox image convert --estargz` and `runbox image optimize`, checked against what other
// tools and runbox's own lazy loading make of the result.
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { unmountUnder } from '../src/host/mounts.js';
import { PrivateContainerd } from './helpers/containerd.js';
import { layoutWithFiles, seededBytes } from './helpers/estargz.js';
import { lazyScratch, setFreeLoopReadahead, stopLoader } from './helpers/lazy.js';
import { push, startFaultProxy, startRegistry, type Registry } from './helpers/registry.js';
import { TestEnv } from './helpers/runbox.js';
import { cleanupList } from './helpers/teardown.js';

const LARGE = seededBytes(8 * 1024 * 1024, 31);
const setup = cleanupList();
let registry: Registry;
let containerd: PrivateContainerd;

test.before(async () => {
  containerd = await PrivateContainerd.start(setup);
  registry = await startRegistry(setup);
  push(registry, layoutWithFiles(setup, { 'app/config.txt': Buffer.from('config\n'), 'app/large.bin': LARGE, 'app/unused.bin': seededBytes(3 * 1024 * 1024, 32) }), 'latest', 'plain/app:1');
});
test.after.always(() => setup.run());

function scratch(t: { teardown(f: () => unknown): void }): string {
  return lazyScratch(t).dir;
}

interface StoredImage {
  layers: Array<{ digest: string; annotations?: Record<string, string> }>;
}

function stored(store: string, name: string): StoredImage {
  return (JSON.parse(readFileSync(join(store, 'images.json'), 'utf8')) as Record<string, StoredImage>)[name]!;
}

/** The tar entry names of a stored gzip layer, in order. */
function layerNames(store: string, digest: string): string[] {
  const tar = gunzipSync(readFileSync(join(store, 'blobs', 'sha256', digest.slice(7))));
  const names: string[] = [];
  for (let at = 0; at + 512 <= tar.length;) {
    const name = tar.toString('utf8', at, at + 100).replace(/\0.*$/s, '');
    if (!name) break;
    const size = Number.parseInt(tar.toString('latin1', at + 124, at + 136).replace(/\0.*$/s, '').trim() || '0', 8);
    if (tar[at + 156] !== 0x78) names.push(name);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

test('image convert --estargz: a gzip tar image containerd pulls and runs with its runc shim, and runbox runs lazily', async (t) => {
  const dir = scratch(t);
  const env = new TestEnv(t);
  const store = join(dir, 'store');
  const target = `${registry.host}/converted/app:1`;
  const converted = await env.run(['image', 'convert', '--estargz', '--store', store, `${registry.host}/plain/app:1`, target]);
  t.is(converted.code, 0, converted.stderr);
  const image = stored(store, target);
  t.true(image.layers.every((layer) => /^sha256:/.test(layer.annotations?.['containerd.io/snapshot/stargz/toc.digest'] ?? '')));
  t.deepEqual(layerNames(store, image.layers.at(-1)!.digest).slice(0, 1), ['.no.prefetch.landmark']);
  t.is(layerNames(store, image.layers.at(-1)!.digest).at(-1), 'stargz.index.json');

  // containerd checks each layer against the config's diff_ids as it unpacks.
  const pulled = await containerd.ctr(['images', 'pull', '--plain-http', target], { timeout: 120_000 });
  t.is(pulled.code, 0, pulled.stderr);
  const id = containerd.id();
  const ran = await containerd.ctr(['run', '--rm', '--runtime', 'io.containerd.runc.v2', target, id, 'md5sum', '/app/large.bin']);
  t.is(ran.code, 0, ran.stderr);
  t.is(ran.stdout, `${createHash('md5').update(LARGE).digest('hex')}  /app/large.bin\n`);

  const lazy = await env.run(['run', '--image', target, '--lazy', '--store', join(dir, 'lazy-store'), '--rm', env.id(), '--', 'cat', '/app/config.txt']);
  t.is(lazy.code, 0, lazy.stderr);
  t.is(lazy.stdout, 'config\n');
  await stopLoader(join(dir, 'lazy-store'));
});

test('image optimize: what the workload read comes first and is prefetched; a lazy start of the result asks the registry nothing more', async (t) => {
  const dir = scratch(t);
  const env = new TestEnv(t);
  const store = join(dir, 'store');
  const target = `${registry.host}/optimized/app:1`;
  const workload = ['sh', '-c', 'cat /app/config.txt; head -c 100000 /app/large.bin | md5sum'];
  const expected = `config\n${createHash('md5').update(LARGE.subarray(0, 100000)).digest('hex')}  -\n`;
  // The recording run on a loop device with the kernel's default read-ahead, the lazy start on one an earlier user
  // left with a larger one: both read ahead as far.
  setFreeLoopReadahead(128);
  const optimized = await env.run(['image', 'optimize', '--store', store, `${registry.host}/plain/app:1`, target, '--', ...workload], { timeout: 120_000 });
  t.is(optimized.code, 0, optimized.stderr);
  t.true(optimized.stdout.startsWith(expected), 'the workload ran once, its output shown');
  const image = stored(store, target);
  const last = image.layers.at(-1)!;
  const names = layerNames(store, last.digest);
  t.true(names.indexOf('app/config.txt') < names.indexOf('.prefetch.landmark'), 'the file read whole before the landmark');
  t.true(names.indexOf('app/large.bin') > names.indexOf('.prefetch.landmark'), 'the large file read in part after it');
  t.deepEqual(JSON.parse(last.annotations?.['io.runbox.estargz.prefetch-chunks'] ?? '[]'), [['app/large.bin', 0]], 'only the range read is prefetched');
  // A cold start of the optimised image: once the bundle is made, the workload needs nothing from the registry.
  const proxy = await startFaultProxy(t, registry.host);
  const lazyStore = join(dir, 'lazy-store');
  const bundle = join(dir, 'bundle');
  setFreeLoopReadahead(2560);
  const made = await env.run(['bundle', '--image', `${proxy.host}/optimized/app:1`, '--lazy', '--lazy-background-rate', '0', '--store', lazyStore, bundle, '--', ...workload]);
  t.is(made.code, 0, made.stderr);
  const before = proxy.requests.length;
  const ran = await env.run(['run', '--bundle', bundle, env.id()]);
  t.is(ran.stdout, expected);
  t.deepEqual(proxy.requests.slice(before).map((request) => `${request.method} ${request.path} ${request.range ?? ''}`), [], 'no request while the workload ran');
  unmountUnder(bundle);
});
