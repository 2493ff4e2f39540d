// A bundle whose rootfs is served lazily: the image pulled lazily when it is not in the store (its TOCs, and the
// layers that are not eStargz whole), the loader asked to serve its EROFS image (after prefetching what the
// image prioritises), that image loop-mounted read-only and an overlay on top with the bundle's own upper
// directory (DIR/.lazy/upper): writes never reach the image. Made in a partial directory renamed onto DIR once
// whole, as every bundle is; a failure takes the mounts down and removes it.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../host/atomic-file.js';
import { setReadahead } from '../host/block-readahead.js';
import { unmountUnder } from '../host/mounts.js';
import { specFromImageConfig, type SpecOverrides } from '../image/bundle-spec.js';
import { bundleFromImage } from '../image/image-bundle.js';
import { parseImageConfig } from '../image/image-config.js';
import type { ImageRecord } from '../image/image-index.js';
import type { ImageStore } from '../image/image-store.js';
import { PartialBundle } from '../image/partial-bundle.js';
import type { PullOptions } from '../image/pull.js';
import { connectLoader } from './loader-client.js';
import { recordLazyDisk } from './lazy-disk.js';
import type { RegistrySettings } from './loader-protocol.js';
import { LazyLoaderError } from '../errors/errors.js';

export interface LazyBundleOptions {
  pull?: PullOptions;
  overrides?: SpecOverrides;
  registry: RegistrySettings;
  /** Bytes per second the background fetch may take. */
  backgroundRate?: number;
  /** The loader records what is read of the image (image optimize). */
  record?: boolean;
  /** Told once the rootfs is served: bytes prefetched, and the image's compressed size. */
  onServed?: (served: { prefetched: number; size: number }) => void;
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new LazyLoaderError(`${command}: ${stderr.trim() || `exit ${code}`}`))));
  });
}

/** The image, pulled lazily when the store does not have it. */
async function lazyImage(store: ImageStore, reference: string, pull: PullOptions): Promise<ImageRecord> {
  const found = store.find(reference);
  if (found) return store.markUsed(found);
  return store.pullOnly(reference, { ...pull, lazy: true });
}

/**
 * The read-ahead of the loop device under a lazy rootfs (the kernel's default). A loop device keeps the largest
 * read-ahead any earlier user gave it (2560 KiB after a file on a disk with a large optimal I/O size): left as
 * found, how far a file is read ahead, and so what `image optimize` records and what a later start fetches on
 * demand, would depend on which loop device the mount got.
 */
const LAZY_READAHEAD_KIB = 128;

/** Mounts the loader's image file read-only at a lower directory, and the rootfs overlay over it. */
async function mountRootfs(imageFile: string, bundle: string): Promise<void> {
  const lazy = join(bundle, '.lazy');
  const lower = join(lazy, 'lower');
  for (const dir of [lower, join(lazy, 'upper'), join(lazy, 'work')]) mkdirSync(dir, { recursive: true, mode: 0o700 });
  await run('mount', ['-t', 'erofs', '-o', 'ro,loop', imageFile, lower]);
  try {
    setReadahead(lower, LAZY_READAHEAD_KIB);
    // The overlay's root takes the upper directory's mode and owner: the image's root's.
    const root = statSync(lower);
    chownSync(join(lazy, 'upper'), root.uid, root.gid);
    chmodSync(join(lazy, 'upper'), root.mode & 0o7777);
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${join(lazy, 'upper')},workdir=${join(lazy, 'work')}`, join(bundle, 'rootfs')]);
  } finally {
    // The overlay holds the EROFS mount; detached here, it ends with the last overlay using it (and its loop
    // device with it, which closes the loader's file).
    await run('umount', ['-l', lower]);
  }
  rmdirSync(lower);
}

/**
 * Makes the bundle for `reference` in `dir` with a lazily served rootfs. An image the store holds whole (pulled
 * without --lazy) gets an ordinary bundle.
 */
export async function lazyBundleFromImage(store: ImageStore, reference: string, dir: string, options: LazyBundleOptions): Promise<ImageRecord> {
  const image = await store.using(() => lazyImage(store, reference, options.pull ?? {}));
  if (!image.lazy) return bundleFromImage(store, reference, dir, { ...(options.pull ? { pull: options.pull } : {}), ...(options.overrides ? { overrides: options.overrides } : {}) });
  const partial = new PartialBundle(dir);
  partial.open();
  try {
    const rootfs = join(partial.path, 'rootfs');
    mkdirSync(rootfs, { mode: 0o755 });
    const loader = await connectLoader(store.dir);
    try {
      const reply = await loader!.ask({ op: 'open', image: image.name, registry: options.registry, ...(options.backgroundRate !== undefined ? { backgroundRate: options.backgroundRate } : {}), ...(options.record ? { record: true } : {}), ...(store.quota !== undefined ? { quota: store.quota } : {}) });
      if (!reply.ok) throw new LazyLoaderError(reply.error);
      if (!('path' in reply)) throw new LazyLoaderError('the lazy loader answered without an image');
      options.onServed?.({ prefetched: reply.prefetched, size: image.layers.reduce((sum, layer) => sum + layer.size, 0) });
      await mountRootfs(reply.path, partial.path);
      recordLazyDisk(partial.path, { store: store.dir, image: image.name, manifest: image.manifest, registry: options.registry });
    } finally {
      loader!.close();
    }
    const config = parseImageConfig(store.content.read(image.config.digest), `image config ${image.config.digest}`);
    const spec = await specFromImageConfig(config, rootfs, options.overrides ?? {});
    writeFileAtomic(join(partial.path, 'config.json'), JSON.stringify(spec, null, 2), 0o644);
    partial.publish();
  } catch (error) {
    partial.remove();
    throw error;
  }
  return image;
}

/** Removes a bundle, taking down its lazily served rootfs first (the loader ends once nothing uses it). */
export function removeBundle(dir: string): void {
  unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true });
}
