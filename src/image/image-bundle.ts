// An OCI bundle from an image: DIR/rootfs (its layers unpacked, in a worker thread) and DIR/config.json (from its
// config), made in a private directory beside DIR and renamed onto it once whole (partial-bundle.ts). When the
// image is not stored yet, each layer is unpacked while it downloads, following its partial file in the content
// store (growing-blob.ts), while the later layers download beside it. A layer's unpacking completes only once the
// store has verified its digest (and the unpacker its diff_id); any failure or interruption removes the whole
// bundle.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../host/atomic-file.js';
import { specFromImageConfig, type SpecOverrides } from './bundle-spec.js';
import { parseImageConfig } from './image-config.js';
import type { ImageRecord } from './image-index.js';
import type { ImageStore } from './image-store.js';
import { PartialBundle } from './partial-bundle.js';
import type { PullEvent, PullOptions } from './pull.js';
import { UnpackWorker, type LayerFeed } from './unpack-worker.js';
import { ImageConfigError } from '../errors/errors.js';

export interface BundleOptions {
  pull?: PullOptions;
  overrides?: SpecOverrides;
  /** Aborting it stops the unpacking and removes what was made of the bundle; the promise then rejects at once. */
  signal?: AbortSignal;
}

/** How the bundle gets at the image's blobs: the config once it is stored, a layer as it comes. */
interface BlobAccess {
  configStored(): Promise<void>;
  feedLayer: LayerFeed;
}

async function writeBundle(
  store: ImageStore,
  worker: UnpackWorker,
  partial: PartialBundle,
  image: Pick<ImageRecord, 'config' | 'layers'>,
  blobs: BlobAccess,
  overrides: SpecOverrides,
): Promise<void> {
  partial.open();
  try {
    const rootfs = join(partial.path, 'rootfs');
    mkdirSync(rootfs, { mode: 0o755 });
    // The pull stores the config before any layer: its diff_ids check each layer as it is unpacked.
    await blobs.configStored();
    const config = parseImageConfig(store.content.read(image.config.digest), `image config ${image.config.digest}`);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== image.layers.length) {
      throw new ImageConfigError(`image config ${image.config.digest} has ${diffIds.length} diff_ids for ${image.layers.length} layers`);
    }
    const layers = image.layers.map((layer, i) => ({ digest: layer.digest, mediaType: layer.mediaType, diffId: diffIds[i] }));
    await worker.unpack(rootfs, layers, blobs.feedLayer, store.limits);
    const spec = await specFromImageConfig(config, rootfs, overrides);
    writeFileAtomic(join(partial.path, 'config.json'), JSON.stringify(spec, null, 2), 0o644);
    partial.publish();
  } catch (error) {
    partial.remove();
    throw error;
  }
}

/** Rejects once `signal` is aborted and `cleanup` has run; `stop` forgets the signal. */
function interruption(signal: AbortSignal, cleanup: () => Promise<void>): { interrupted: Promise<never>; stop(): void } {
  let abort = (): void => {};
  const interrupted = new Promise<never>((_, reject) => {
    abort = () => void cleanup().finally(() => reject(new Error(`interrupted${typeof signal.reason === 'string' ? ` by ${signal.reason}` : ''}`)));
  });
  interrupted.catch(() => {}); // raced by the caller, which may already be done
  if (signal.aborted) abort();
  else signal.addEventListener('abort', abort, { once: true });
  return { interrupted, stop: () => signal.removeEventListener('abort', abort) };
}

/**
 * Makes the bundle for `reference` in `dir` (absent or an empty directory), pulling the image when missing. The
 * blobs are protected from garbage collection until the bundle is written; the quota is kept afterwards.
 */
export async function bundleFromImage(store: ImageStore, reference: string, dir: string, options: BundleOptions = {}): Promise<ImageRecord> {
  const { pull = {}, overrides = {} } = options;
  const worker = new UnpackWorker();
  const partial = new PartialBundle(dir);
  const watch = options.signal && interruption(options.signal, async () => {
    await worker.stop();
    partial.remove();
  });
  let image: ImageRecord;
  try {
    const making = store.using(async () => {
      const found = store.find(reference);
      if (!found) return pullAndUnpack(store, worker, reference, partial, pull, overrides);
      const used = await store.markUsed(found);
      const stored: BlobAccess = { configStored: async () => {}, feedLayer: async (digest, listener) => listener({ kind: 'stored', path: store.content.blobPath(digest) }) };
      await writeBundle(store, worker, partial, used, stored, overrides);
      return used;
    });
    image = await (watch ? Promise.race([making, watch.interrupted]) : making);
  } finally {
    watch?.stop();
    await worker.stop();
  }
  await store.keepQuota(image.name);
  return image;
}

async function pullAndUnpack(store: ImageStore, worker: UnpackWorker, reference: string, partial: PartialBundle, pull: PullOptions, overrides: SpecOverrides): Promise<ImageRecord> {
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
  const [record] = await Promise.all([pulling, writeBundle(store, worker, partial, image, blobs, overrides).catch(async (error: unknown) => {
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
