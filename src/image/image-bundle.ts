// An OCI bundle from an image: DIR/rootfs (its layers unpacked) and DIR/config.json (from its config). When the
// image is not stored yet, each layer is unpacked as soon as the pull has stored and verified it, while the
// later layers are still downloading.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../runtime/atomic-file.js';
import { specFromImageConfig, type SpecOverrides } from './bundle-spec.js';
import { parseImageConfig } from './image-config.js';
import type { ImageRecord } from './image-index.js';
import type { ImageStore } from './image-store.js';
import type { PullEvent, PullOptions } from './pull.js';
import { unpackLayers } from './unpack.js';

/** Resolves when `digest` is stored; rejects when the pull fails first. */
type LayerWait = (digest: string) => Promise<void>;

async function writeBundle(store: ImageStore, dir: string, image: Pick<ImageRecord, 'config' | 'layers'>, stored: LayerWait, overrides: SpecOverrides): Promise<void> {
  const existed = existsSync(dir);
  if (existed && readdirSync(dir).length > 0) throw new Error(`bundle directory ${dir} is not empty`);
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  try {
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs, { mode: 0o755 });
    // The pull stores the config before any layer: its diff_ids check each layer as it is unpacked.
    await stored(image.config.digest);
    const config = parseImageConfig(store.content.read(image.config.digest), `image config ${image.config.digest}`);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== image.layers.length) {
      throw new Error(`image config ${image.config.digest} has ${diffIds.length} diff_ids for ${image.layers.length} layers`);
    }
    await unpackLayers(
      image.layers.map((layer, i) => ({
        digest: layer.digest,
        mediaType: layer.mediaType,
        diffId: diffIds[i],
        open: async () => {
          await stored(layer.digest);
          return store.content.openBlob(layer.digest);
        },
      })),
      rootfs,
    );
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
  const image = await store.using(async () => {
    const found = store.find(reference);
    if (!found) return pullAndUnpack(store, reference, dir, pull, overrides);
    const used = await store.markUsed(found);
    await writeBundle(store, dir, used, async () => {}, overrides);
    return used;
  });
  await store.keepQuota(image.name);
  return image;
}

async function pullAndUnpack(store: ImageStore, reference: string, dir: string, pull: PullOptions, overrides: SpecOverrides): Promise<ImageRecord> {
  const waiting = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  const waiter = (digest: string) => {
    let entry = waiting.get(digest);
    if (!entry) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      entry = { promise, resolve };
      waiting.set(digest, entry);
    }
    return entry;
  };
  let resolveImage!: (image: Pick<ImageRecord, 'config' | 'layers'>) => void;
  const resolved = new Promise<Pick<ImageRecord, 'config' | 'layers'>>((r) => (resolveImage = r));
  const onEvent = (event: PullEvent): void => {
    pull.onEvent?.(event);
    if (event.type === 'resolved') resolveImage(event);
    if (event.type === 'stored') waiter(event.digest).resolve();
  };
  const pulling = store.pullOnly(reference, { ...pull, onEvent });
  const failed = pulling.then(() => new Promise<never>(() => {}));
  const image = await Promise.race([resolved, failed]);
  const stored: LayerWait = (digest) => Promise.race([waiter(digest).promise, failed]);
  const [record] = await Promise.all([pulling, writeBundle(store, dir, image, stored, overrides).catch(async (error: unknown) => {
    // A failed pull is the error to report, not the unpack it interrupted.
    await pulling;
    throw error;
  })]);
  return record;
}
