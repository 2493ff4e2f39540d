// Property-style fuzzing of the unpacker: layers of random hostile entries (names with "..", absolute paths,
// symlinks and hardlinks that point out or loop, whiteouts, devices, PAX path overrides, cut and corrupted
// streams, in random orders over several layers) never change anything outside the rootfs, never hang, leave no
// partial rootfs when they fail and no descriptor open. The seed is printed when a case fails; RUNBOX_FUZZ_SEED
// replays it, RUNBOX_FUZZ_CASES runs more cases.
import test from 'ava';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { UnpackError } from '../src/errors/errors.js';
import { unpackLayers } from '../src/image/unpack.js';
import { bufferLayer, compress, type Compression, type LayerEntry, tarBytes, unpackSandbox } from './helpers/layers.js';
import { MediaType } from '../src/image/media-types.js';

/** mulberry32: a small seeded PRNG, floats in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Random {
  constructor(readonly next: () => number) {}
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const LAYER_TYPES: Record<Compression, string> = { none: MediaType.ociLayerTar, gzip: MediaType.ociLayerGzip, zstd: MediaType.ociLayerZstd };

/** Mostly names that resolve through the links and whiteouts the layers make; now and then one refused outright. */
function hostileName(random: Random, canary: string): string {
  if (random.chance(0.01)) return `${canary}/${random.pick(['secret', 'new', ''])}`;
  if (random.chance(0.01)) return Array.from({ length: 30 }, () => 'd'.repeat(200)).join('/');
  const components = ['a', 'b', 'c', 'a', 'b', 'link', 'link', 'dir', '.wh.a', '.wh.link', '.wh..wh..opq', 'canary', 'secret'];
  const parts = Array.from({ length: 1 + random.int(4) }, () => (random.chance(0.02) ? random.pick(['..', '.', 'x'.repeat(300)]) : random.pick(components)));
  return (random.chance(0.01) ? '/' : '') + parts.join('/') + (random.chance(0.1) ? '/' : '');
}

function hostileTarget(random: Random, canary: string): string {
  return random.pick(['..', '../..', '../../..', '/', '/a', 'a', 'a/b', 'link', 'link/..', '../canary', canary, `${canary}/secret`, '.', 'b/../..', '/../..', '/link/b', 'dir/../../canary', '']);
}

function hostileEntry(random: Random, canary: string): LayerEntry {
  const name = hostileName(random, canary);
  const common = { name, mode: random.chance(0.2) ? random.int(0o10000) : 0o755, uid: random.pick([0, 0, 65534, 1000]), gid: random.pick([0, 0, 65534]) };
  const pax = random.chance(0.05) ? { pax: { path: hostileName(random, canary) } } : {};
  switch (random.pick(['file', 'file', 'file', 'directory', 'directory', 'symlink', 'symlink', 'link', 'device'] as const)) {
    case 'file':
      return { header: { ...common, ...pax, type: 'file' }, content: Buffer.from(`content ${random.int(1000)}\n`) };
    case 'directory':
      return { header: { ...common, ...pax, type: 'directory' } };
    case 'symlink':
      return { header: { ...common, ...pax, type: 'symlink', linkname: hostileTarget(random, canary) } };
    case 'link':
      return { header: { ...common, ...pax, type: 'link', linkname: random.chance(0.1) ? hostileTarget(random, canary) : hostileName(random, canary) } };
    case 'device':
      return random.chance(0.5)
        ? { header: { ...common, type: 'fifo' } }
        : { header: { ...common, type: 'character-device', devmajor: 1, devminor: 3 } };
  }
}

/** A layer's blob: the entries packed, sometimes cut short or with a byte flipped, then maybe compressed. */
async function hostileLayer(random: Random, canary: string) {
  const entries = Array.from({ length: 1 + random.int(8) }, () => hostileEntry(random, canary));
  let tar: Buffer;
  try {
    tar = await tarBytes(entries);
  } catch {
    tar = await tarBytes([]); // a header tar-stream cannot write (a name it refuses): an empty layer instead
  }
  if (random.chance(0.08)) tar = tar.subarray(0, random.int(tar.length));
  if (random.chance(0.05)) {
    tar = Buffer.from(tar);
    tar[random.int(tar.length)] ^= 1 << random.int(8);
  }
  const compression = random.pick(['none', 'none', 'gzip'] as const);
  return bufferLayer(compress(tar, compression), LAYER_TYPES[compression]);
}

function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

test('random hostile layers never write outside the rootfs, never hang, and leave nothing when they fail', async (t) => {
  const seed = Number(process.env.RUNBOX_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const cases = Number(process.env.RUNBOX_FUZZ_CASES ?? 150);
  t.log(`seed ${seed} (RUNBOX_FUZZ_SEED=${seed} replays it)`);
  const random = new Random(prng(seed));
  const box = unpackSandbox(t);
  const before = box.outside();
  const descriptors = openDescriptors();
  let failed = 0;
  for (let i = 0; i < cases; i++) {
    const layers = [];
    for (let n = 1 + random.int(3); n > 0; n--) layers.push(await hostileLayer(random, box.canary));
    const what = `seed ${seed}, case ${i}`;
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 20_000)));
    const outcome = await Promise.race([
      unpackLayers(layers, box.rootfs, { warn: () => {} }).then(
        () => 'done' as const,
        (error: unknown) => error,
      ),
      hung,
    ]);
    clearTimeout(timer);
    const problem =
      outcome === 'hung'
        ? 'the unpack did not finish'
        : outcome === 'done'
          ? undefined
          : !(outcome instanceof UnpackError)
            ? `it failed with something else than an UnpackError: ${String(outcome)}`
            : outcome.message.length > 1000 || outcome.message.includes('\n')
              ? `a long or multi-line error: ${outcome.message.slice(0, 300)}`
              : existsSync(box.rootfs)
                ? `a partial rootfs was left after: ${outcome.message}`
                : undefined;
    if (outcome !== 'done') failed++;
    const outside = box.outside();
    if (problem || JSON.stringify(outside) !== JSON.stringify(before)) {
      t.deepEqual(outside, before, `${what}: something changed outside the rootfs`);
      t.fail(`${what}: ${problem ?? 'see above'}`);
      return;
    }
    rmSync(box.rootfs, { recursive: true, force: true });
  }
  t.is(openDescriptors(), descriptors, `seed ${seed}: descriptors left open`);
  t.log(`${cases} cases, ${failed} refused`);
});
