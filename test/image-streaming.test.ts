// `bundle --image` unpacks each layer while it downloads: what it writes early, and how a download that breaks,
// starts over or brings wrong bytes still ends in a whole, verified bundle or in none.
import test, { type ExecutionContext } from 'ava';
import { cpSync, existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, FIXTURE_ROOTFS, TestEnv } from './helpers/runbox.js';
import { compress, sha256, tarBytes, type LayerEntry } from './helpers/layers.js';
import { FIXTURE_OCI, fixtureLayer, push, startFaultProxy, startRegistry, type Registry } from './helpers/registry.js';

async function setup(t: ExecutionContext) {
  const env = new TestEnv(t);
  const registry = await startRegistry(t);
  push(registry, FIXTURE_OCI, 'latest', 'busybox:latest');
  const proxy = await startFaultProxy(t, registry.host);
  proxy.only = fixtureLayer();
  return { env, proxy, ref: `${proxy.host}/busybox:latest`, store: join(env.dir, 'store'), bundle: join(env.dir, 'bundle') };
}

function layerAttempts(proxy: Awaited<ReturnType<typeof setup>>['proxy']) {
  return proxy.requests.filter((r) => r.path.endsWith(fixtureLayer()));
}

function assertWholeBundle(t: ExecutionContext, bundle: string): void {
  t.true(existsSync(join(bundle, 'config.json')));
  t.true(readFileSync(join(bundle, 'rootfs', 'bin', 'busybox')).equals(readFileSync(join(FIXTURE_ROOTFS, 'bin', 'busybox'))));
  t.is(lstatSync(join(bundle, 'rootfs', 'bin', 'sh')).isSymbolicLink(), true);
}

test('a layer is unpacked while it downloads, and the bundle is finished only once the layer is whole', async (t) => {
  const { env, proxy, ref, store, bundle } = await setup(t);
  proxy.fault = { kind: 'stall', afterBytes: 300_000, times: 1 };
  const making = env.run(['bundle', '-q', '--store', store, '--registry-timeout', '5', '--image', ref, bundle]);
  // While the layer's download stands still part-way, what came before is already in the rootfs being made
  // (beside the bundle directory until it is whole).
  const partials = () => readdirSync(dirname(bundle)).filter((name) => name.startsWith(`.${basename(bundle)}.runbox-partial-`) && !name.endsWith('.lock'));
  let early = false;
  for (let i = 0; i < 200 && !early; i++) {
    early = partials().some((name) => existsSync(join(dirname(bundle), name, 'rootfs', 'bin', 'busybox')));
    if (!early) await sleep(25);
  }
  t.true(early, 'the first files of the layer appear before its download ends');
  t.is(layerAttempts(proxy).length, 1, 'still the first request for the layer');
  t.false(existsSync(bundle));
  const made = await making;
  t.is(made.code, 0, made.stderr);
  t.is(layerAttempts(proxy).length, 2);
  assertWholeBundle(t, bundle);
});

test('a layer cut mid-download and sent again from its first byte (a registry without Range) gives a whole bundle', async (t) => {
  const { env, proxy, ref, store, bundle } = await setup(t);
  proxy.ignoreRange = true;
  proxy.fault = { kind: 'cut', afterBytes: 300_000, times: 1 };
  const made = await env.run(['bundle', '-q', '--store', store, '--image', ref, bundle]);
  t.is(made.code, 0, made.stderr);
  const attempts = layerAttempts(proxy);
  t.deepEqual(attempts.map((r) => r.status), [200, 200]);
  t.regex(attempts[1]!.range ?? '', /^bytes=\d+-$/, 'it asked to resume; the registry sent everything');
  assertWholeBundle(t, bundle);
});

test('a corrupted layer leaves no bundle, though its bytes were being unpacked as they came', async (t) => {
  const { env, proxy, ref, store, bundle } = await setup(t);
  proxy.fault = { kind: 'corrupt', times: 100 };
  const made = await env.run(['bundle', '-q', '--store', store, '--image', ref, bundle]);
  t.is(made.code, 1);
  t.regex(errorMessage(made.stderr), new RegExp(`^image ${ref}: digest mismatch: expected ${fixtureLayer()}, got sha256:[0-9a-f]{64}$`));
  t.false(existsSync(bundle));
});

/** Pushes the busybox image with one more gzip layer of `entries` on top, as REPO:TAG. */
async function pushWithLayer(registry: Registry, dir: string, entries: LayerEntry[], target: string): Promise<void> {
  const layout = join(dir, 'layout');
  cpSync(FIXTURE_OCI, layout, { recursive: true });
  const blobPath = (digest: string) => join(layout, 'blobs', 'sha256', digest.slice(7));
  const write = (bytes: Buffer) => {
    writeFileSync(blobPath(sha256(bytes)), bytes);
    return { digest: sha256(bytes), size: bytes.length };
  };
  const tar = await tarBytes(entries);
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...write(compress(tar, 'gzip')) };
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(blobPath(index.manifests[0]!.digest), 'utf8')) as { config: { digest: string; size: number }; layers: object[] };
  const config = JSON.parse(readFileSync(blobPath(manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  config.rootfs.diff_ids.push(sha256(tar));
  const configBlob = write(Buffer.from(JSON.stringify(config)));
  const top = write(Buffer.from(JSON.stringify({ ...manifest, config: { ...manifest.config, ...configBlob }, layers: [...manifest.layers, layer] })));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...top, annotations: { 'org.opencontainers.image.ref.name': 'crafted' } }] }),
  );
  push(registry, layout, 'crafted', target);
}

test('a layer that writes outside the rootfs is refused from the unpacking thread, naming layer and entry, and leaves no bundle', async (t) => {
  const env = new TestEnv(t);
  const registry = await startRegistry(t);
  const entries: LayerEntry[] = [{ header: { name: 'fine', type: 'file', mode: 0o644 }, content: 'ok\n' }, { header: { name: '../../escaped', type: 'file', mode: 0o644 }, content: 'pwned\n' }];
  await pushWithLayer(registry, env.dir, entries, 'evil:1');
  const bundle = join(env.dir, 'bundle');
  const made = await env.run(['bundle', '-q', '--store', join(env.dir, 'store'), '--image', `${registry.host}/evil:1`, bundle]);
  t.is(made.code, 1);
  t.regex(errorMessage(made.stderr), /layer sha256:[0-9a-f]{64}: entry "\.\.\/\.\.\/escaped": path has a "\.\." component$/);
  t.false(existsSync(bundle));
  t.false(existsSync(join(env.dir, 'escaped')));
});
