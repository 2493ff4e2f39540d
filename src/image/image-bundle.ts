// An OCI bundle from an image: DIR/rootfs (its layers unpacked, in a worker thread) and DIR/config.json (from its
// config). When the image is not stored yet, each layer is unpacked while it downloads, following its partial
// file in the content store (growing-blob.ts), while the later layers download beside it. A layer's unpacking
// completes only once the store has verified its digest (and the unpacker its diff_id); any failure removes the
// whole bundle.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../runtime/atomic-file.js';
import { specFromImageConfig, type SpecOverrides } from './bundle-spec.js';
import { parseImageConfig } from './image-config.js';
import type { ImageRecord } from './image-index.js';
import type { ImageStore } from './image-store.js';
import type { PullEvent, PullOptions } from './pull.js';
import { UnpackWorker, type LayerFeed } from './unpack-worker.js';

/** How the bundle gets at the image's blobs: the config once it is stored, a layer as it comes. */
interface BlobAccess {
  configStored(): Promise<void>;
  feedLayer: LayerFeed;
}

async function writeBundle(
  store: ImageStore,
  worker: UnpackWorker,
  dir: string,
  image: Pick<ImageRecord, 'config' | 'layers'>,
  blobs: BlobAccess,
  overrides: SpecOverrides,
): Promise<void> {
  const existed = existsSync(dir);
  if (existed && readdirSync(dir).length > 0) throw new Error(`bundle directory ${dir} is not empty`);
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  try {
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs, { mode: 0o755 });
    // The pull stores the config before any layer: its diff_ids check each layer as it is unpacked.
    await blobs.configStored();
    const config = parseImageConfig(store.content.read(image.config.digest), `image config ${image.config.digest}`);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== image.layers.length) {
      throw new Error(`image config ${image.config.digest} has ${diffIds.length} diff_ids for ${image.layers.length} layers`);
    }
    const layers = image.layers.map((layer, i) => ({ digest: layer.digest, mediaType: layer.mediaType, diffId: diffIds[i] }));
    await worker.unpack(rootfs, layers, blobs.feedLayer);
    const spec = await specFromImageConfig(config, rootfs, overrides);
    writeFileAtomic(join(dir, 'config.json'), JSON.stringify(spec, null, 2), 0o644);
  } catch (error) {
    if (existed) for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true });
    else rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Makes the bundle for `reference` in `dir` (absent or empty), pulling the image when missing. The blobs are
 * protected from garbage collection until the bundle is written; the quota is kept afterwards.
 */
export async function bundleFromImage(store: ImageStore, reference: string, dir: string, pull: PullOptions = {}, overrides: SpecOverrides = {}): Promise<ImageRecord> {
  const worker = new UnpackWorker();
  let image: ImageRecord;
  try {
    image = await store.using(async () => {
      const found = store.find(reference);
      if (!found) return pullAndUnpack(store, worker, reference, dir, pull, overrides);
      const used = await store.markUsed(found);
      const stored: BlobAccess = { configStored: async () => {}, feedLayer: async (digest, listener) => listener({ kind: 'stored', path: store.content.blobPath(digest) }) };
      await writeBundle(store, worker, dir, used, stored, overrides);
      return used;
    });
  } finally {
    await worker.stop();
  }
  await store.keepQuota(image.name);
  return image;
}

async function pullAndUnpack(store: ImageStore, worker: UnpackWorker, reference: string, dir: string, pull: PullOptions, overrides: SpecOverrides): Promise<ImageRecord> {
  const stored = new Signals();
  const started = new Signals(); // the blob's download has begun (its first progress), or it is stored

  let resolveImage!: (image: Pick<ImageRecord, 'config' | 'layers'>) => void;
  const resolved = new Promise<Pick<ImageRecord, 'config' | 'layers'>>((r) => (resolveImage = r));
  const onEvent = (event: PullEvent): void => {
    pull.onEvent?.(event);
    if (event.type === 'resolved') resolveImage(event);
    if (event.type === 'stored') stored.raise(event.digest);
    if (event.type === 'stored' || event.type === 'progress') started.raise(event.digest);
  };
  const pulling = store.pullOnly(reference, { ...pull, onEvent });
  const failed = pulling.then(() => new Promise<never>(() => {}));
  const image = await Promise.race([resolved, failed]);
  const blobs: BlobAccess = {
    configStored: () => Promise.race([stored.wait(image.config.digest), failed]),
    feedLayer: async (digest, listener) => {
      failed.catch((error: Error) => listener({ kind: 'failed', message: error.message }));
      await Promise.race([started.wait(digest), failed]);
      if (!store.content.watch(digest, listener)) throw new Error(`layer ${digest} is neither downloading nor stored`);
    },
  };
  const [record] = await Promise.all([pulling, writeBundle(store, worker, dir, image, blobs, overrides).catch(async (error: unknown) => {
    // A failed pull is the error to report, not the unpack it interrupted.
    await pulling;
    throw error;
  })]);
  return record;
}

/** One-shot signals by digest: `wait` resolves once `raise` was called for it, before or after. */
class Signals {
  private readonly entries = new Map<string, { promise: Promise<void>; resolve: () => void }>();

  wait(digest: string): Promise<void> {
    return this.entry(digest).promise;
  }

  raise(digest: string): void {
    this.entry(digest).resolve();
  }

  private entry(digest: string): { promise: Promise<void>; resolve: () => void } {
    let entry = this.entries.get(digest);
    if (!entry) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      entry = { promise, resolve };
      this.entries.set(digest, entry);
    }
    return entry;
  }
}
