// What an image may take: descriptors must give sizes within the limits, a layer cannot unpack to more bytes or
// entries than allowed, the image config must agree with its layers, and nothing fills the filesystem a bundle or
// the store is on. Each refusal is one line naming the image and what was wrong, and leaves no bundle behind.
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage, TestEnv } from './helpers/runbox.js';
import { craftedLayer, craftImage, startTinyRegistry } from './helpers/tiny-registry.js';
import type { LayerEntry } from './helpers/layers.js';

const MiB = 1024 * 1024;
const file = (name: string, content: string | Buffer): LayerEntry => ({ header: { name, type: 'file', mode: 0o644 }, content });

/** Files of `size` zero bytes: a layer that compresses to almost nothing and unpacks to `count * size` bytes. */
function zeros(count: number, size: number): LayerEntry[] {
  const content = Buffer.alloc(size);
  return Array.from({ length: count }, (_, i) => file(`zero-${i}`, content));
}

function bundleIn(env: TestEnv, ref: string, flags: string[] = [], store = join(env.dir, 'store'), parent = join(env.dir, 'out')) {
  mkdirSync(parent, { recursive: true });
  return env.run(['bundle', '-q', '--store', store, ...flags, '--image', ref, join(parent, 'bundle')]);
}

test('a layer that unpacks to more than --max-layer-size is stopped, and no bundle is left', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const bomb = await craftedLayer(zeros(1, 96 * MiB));
  t.true(bomb.size < MiB, `the layer is ${bomb.size} bytes compressed`);
  const image = craftImage(registry, 'bomb', '1', [bomb]);
  const made = await bundleIn(env, image.ref, ['--max-layer-size', '32M']);
  t.is(made.code, 1);
  t.is(errorMessage(made.stderr), `image ${image.ref}: layer ${bomb.digest}: its uncompressed tar is over the --max-layer-size limit (${32 * MiB} bytes)`);
  t.deepEqual(readdirSync(join(env.dir, 'out')), []);
});

test('layers that together unpack to more than --max-image-size are stopped', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const layers = [await craftedLayer(zeros(1, 20 * MiB)), await craftedLayer(zeros(2, 10 * MiB))];
  const image = craftImage(registry, 'big', '1', layers);
  const made = await bundleIn(env, image.ref, ['--max-image-size', '32M']);
  t.is(made.code, 1);
  t.is(errorMessage(made.stderr), `image ${image.ref}: layer ${layers[1]!.digest}: the image's uncompressed layers are over the --max-image-size limit (${32 * MiB} bytes)`);
  t.deepEqual(readdirSync(join(env.dir, 'out')), []);
});

test('a layer with more entries than --max-layer-entries is refused', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const layer = await craftedLayer(Array.from({ length: 30 }, (_, i) => file(`f${i}`, 'x')));
  const image = craftImage(registry, 'many', '1', [layer]);
  const made = await bundleIn(env, image.ref, ['--max-layer-entries', '20']);
  t.is(made.code, 1);
  t.is(errorMessage(made.stderr), `image ${image.ref}: layer ${layer.digest}: it has more entries than the --max-layer-entries limit (20)`);
  t.deepEqual(readdirSync(join(env.dir, 'out')), []);
  const raised = await bundleIn(env, image.ref, ['--max-layer-entries', '30']);
  t.is(raised.code, 0, raised.stderr);
});

test('a blob descriptor must have a size, within the limits, before anything is downloaded', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const layer = await craftedLayer([file('a', 'a\n')]);
  const pull = (ref: string, flags: string[] = []) => env.run(['image', 'pull', '-q', '--store', join(env.dir, 'store'), ...flags, ref]);
  const blobGets = () => registry.requests.filter((r) => r.path.endsWith(layer.digest)).length;

  const sizeless = craftImage(registry, 'sizeless', '1', [layer], { manifest: (m) => delete m.layers[0]!.size });
  const noSize = await pull(sizeless.ref);
  t.is(noSize.code, 1);
  t.is(errorMessage(noSize.stderr), `image ${sizeless.ref}: layer ${layer.digest} has no valid size in the manifest (none)`);

  const huge = craftImage(registry, 'huge', '1', [layer], { manifest: (m) => (m.layers[0]!.size = 5 * 1024 ** 3) });
  const tooBig = await pull(huge.ref, ['--max-layer-size', '1G']);
  t.is(errorMessage(tooBig.stderr), `image ${huge.ref}: layer ${layer.digest} is ${5 * 1024 ** 3} bytes, over the --max-layer-size limit (${1024 ** 3} bytes)`);

  const twice = craftImage(registry, 'twice', '1', [layer, await craftedLayer([file('b', 'b\n')])], { manifest: (m) => m.layers.forEach((l) => (l.size = 600 * MiB)) });
  const overImage = await pull(twice.ref, ['--max-image-size', '1G']);
  t.is(errorMessage(overImage.stderr), `image ${twice.ref}: its layers are ${1200 * MiB} bytes, over the --max-image-size limit (${1024 ** 3} bytes)`);

  const bigConfig = craftImage(registry, 'config', '1', [layer], { manifest: (m) => (m.config.size = 64 * MiB) });
  const configTooBig = await pull(bigConfig.ref);
  t.is(errorMessage(configTooBig.stderr), `image ${bigConfig.ref}: config ${bigConfig.config.digest} is ${64 * MiB} bytes, over the limit for an image config (${8 * MiB} bytes)`);

  t.is(blobGets(), 0, 'no layer download was started');
  t.false(existsSync(join(env.dir, 'store', 'blobs', 'sha256')), 'nothing was stored');
});

test('the image config must give a valid diff_id for each layer', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const layer = await craftedLayer([file('a', 'a\n')]);
  const cases: Array<[string, unknown[], string]> = [
    ['empty', [''], 'has an invalid diff_id at index 0: ""'],
    ['null', [null], 'has an invalid diff_id at index 0: null'],
    ['fewer', [], 'has 0 diff_ids for 1 layers'],
    ['more', [layer.diffId, layer.diffId], 'has 2 diff_ids for 1 layers'],
  ];
  for (const [tag, diffIds, reason] of cases) {
    const image = craftImage(registry, 'diffids', tag, [layer], { config: (c) => ((c.rootfs as { diff_ids: unknown[] }).diff_ids = diffIds) });
    const made = await bundleIn(env, image.ref, [], join(env.dir, `store-${tag}`), join(env.dir, `out-${tag}`));
    t.is(made.code, 1, tag);
    t.is(errorMessage(made.stderr), `image ${image.ref}: config of ${image.ref} ${reason}`, tag);
    t.deepEqual(readdirSync(join(env.dir, `out-${tag}`)), [], tag);
  }
});

/** A tmpfs of `size`, unmounted when the test ends. */
function smallFilesystem(t: ExecutionContext, size: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-small-fs-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (mounted.status !== 0) throw new Error(`mount tmpfs: ${mounted.stderr}`);
  t.teardown(() => {
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

test('a bundle that would fill its filesystem is refused before it does, and leaves nothing', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const small = smallFilesystem(t, '32m');
  const layer = await craftedLayer([file('small', 'fits\n'), ...zeros(1, 40 * MiB)]);
  const image = craftImage(registry, 'fill', '1', [layer]);
  const made = await bundleIn(env, image.ref, [], join(env.dir, 'store'), small);
  t.is(made.code, 1);
  t.regex(errorMessage(made.stderr), new RegExp(`^image ${image.ref}: layer ${layer.digest}: entry "zero-0": no room: ${40 * MiB} more bytes would leave less than 1% of the filesystem free \\(\\d+ bytes available\\)$`));
  t.deepEqual(readdirSync(small), []);
});

test('a pull that would fill the store\'s filesystem is refused before it downloads', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const store = join(smallFilesystem(t, '16m'), 'store');
  const layer = await craftedLayer([file('random', randomBytes(24 * MiB))]);
  const image = craftImage(registry, 'store-fill', '1', [layer]);
  const pulled = await env.run(['image', 'pull', '-q', '--store', store, image.ref]);
  t.is(pulled.code, 1);
  t.regex(errorMessage(pulled.stderr), new RegExp(`^image ${image.ref}: image store ${store}: no room: \\d+ more bytes would leave less than 1% of the filesystem free \\(\\d+ bytes available\\)$`));
  t.is(registry.requests.filter((r) => r.path.includes('/blobs/')).length, 0);
  t.false(existsSync(join(store, 'blobs', 'sha256', layer.digest.slice(7))));
});
