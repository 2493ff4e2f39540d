// Rootfs images kept from one container to the next. A container's rootfs under containerd is an overlay of the
// snapshots of its image's layers, which never change once committed, and of a writable layer of its own. While
// that writable layer is empty (a container not yet started), the image of the rootfs is the image of its layers,
// the same for every container of them: it is built once (mkfs.erofs reads the whole tree, 10-30 ms for busybox and
// seconds for a large image) and copied into each VM's disk from here.
import { chmodSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { writeFileAtomic } from '../../host/atomic-file.js';
import { processStartTime } from '../../host/host-process.js';
import { mountInfo } from '../../host/mounts.js';
import { ATOMIC_TEMPORARY } from '../../generated/facts.js';

export const DEFAULT_ROOTFS_CACHE_DIR = '/run/runbox-qemu/rootfs-images';

/** What the cache may hold (its oldest entries go first beyond it): RUNBOX_QEMU_ROOTFS_CACHE_BYTES, else 1 GiB. */
const DEFAULT_CACHE_BYTES = 2 ** 30;

interface OverlayLayers {
  /** The read-only layers, topmost first, as the mount lists them. */
  lowers: string[];
  upper?: string;
}

/** The layers of the overlay mounted at dir (the last mount there), or undefined when dir is no overlay's root. */
function overlayLayersOf(dir: string): OverlayLayers | undefined {
  let target: string;
  try {
    target = realpathSync(dir);
  } catch {
    return undefined;
  }
  const mount = mountInfo().filter((m) => m.mountPoint === target).pop();
  const lowers = mount?.fstype === 'overlay' ? mount.superOptions.get('lowerdir')?.split(':').filter(Boolean) ?? [] : [];
  const upper = mount?.superOptions.get('upperdir');
  return lowers.length ? { lowers, ...(upper ? { upper } : {}) } : undefined;
}

/**
 * The cache key of the image of a rootfs with these layers, or undefined when the rootfs is not only its layers (its
 * writable layer holds something). A layer is named by its path and the identity of its directory (device, inode,
 * change time): a snapshot removed and another made at the same path is another key.
 */
function rootfsImageKey(fstype: string, layers: OverlayLayers): string | undefined {
  try {
    if (layers.upper && readdirSync(layers.upper).length > 0) return undefined;
    return keyOf(fstype, layers.lowers);
  } catch {
    return undefined;
  }
}

/** The key of an image of these lowers as they are now; throws when one is not a directory. */
function keyOf(fstype: string, lowers: string[]): string {
  const identities = lowers.map((path) => {
    const stat = statSync(path, { bigint: true });
    if (!stat.isDirectory()) throw new Error(`${path} is not a directory`);
    return [path, stat.dev.toString(), stat.ino.toString(), stat.ctimeNs.toString()];
  });
  return createHash('sha256').update(JSON.stringify({ fstype, identities })).digest('hex');
}

/** What KEY.json says of the image KEY.FSTYPE beside it. */
interface EntryRecord {
  fstype: string;
  lowers: string[];
}

interface Entry extends EntryRecord {
  image: string;
  record: string;
  bytes: number;
  usedMs: number;
}

/**
 * The cache's entries (each image beside the record of the layers it was built from); what a builder killed midway
 * left (an atomic write's temporary of a dead pid) is removed.
 */
function entries(cacheDir: string): Entry[] {
  let names: string[];
  try {
    names = readdirSync(cacheDir);
  } catch {
    return [];
  }
  for (const name of names) {
    const builder = /\.tmp-(\d+)$/.exec(name)?.[1];
    if (builder && processStartTime(Number(builder)) === undefined) rmSync(join(cacheDir, name), { force: true });
  }
  return names.filter((name) => name.endsWith('.json')).flatMap((name) => {
    const record = join(cacheDir, name);
    try {
      const { fstype, lowers } = JSON.parse(readFileSync(record, 'utf8')) as EntryRecord;
      const image = join(cacheDir, `${name.slice(0, -'.json'.length)}.${fstype}`);
      const stat = statSync(image);
      return [{ fstype, lowers, image, record, bytes: stat.size, usedMs: stat.mtimeMs }];
    } catch {
      rmSync(record, { force: true });
      return [];
    }
  });
}

/** Whether the layers an entry was built from are still there, as they were (its key is still theirs). */
function layersThere(entry: Entry): boolean {
  try {
    return entry.record.endsWith(`${keyOf(entry.fstype, entry.lowers)}.json`);
  } catch {
    return false;
  }
}

/** Removes the entries whose layers are gone, then the least recently used beyond the cache's size. */
function sweep(cacheDir: string, limit: number): void {
  const kept: Entry[] = [];
  for (const entry of entries(cacheDir)) {
    if (layersThere(entry)) {
      kept.push(entry);
    } else {
      rmSync(entry.image, { force: true });
      rmSync(entry.record, { force: true });
    }
  }
  kept.sort((a, b) => b.usedMs - a.usedMs);
  let total = 0;
  for (const entry of kept) {
    total += entry.bytes;
    if (total <= limit) continue;
    rmSync(entry.record, { force: true });
    rmSync(entry.image, { force: true });
  }
}

function cacheLimit(): number {
  const value = Number(process.env.RUNBOX_QEMU_ROOTFS_CACHE_BYTES);
  return Number.isSafeInteger(value) && value >= 0 ? value : DEFAULT_CACHE_BYTES;
}

/**
 * The cached image of the rootfs at rootfsDir, built with build(path) when it is not there yet; undefined when the
 * rootfs cannot be cached (not an overlay of layers alone, or a cache of 0 bytes): the caller builds its own. Another
 * process's sweep may remove an entry at any time: the caller opens it at once, and builds its own if it is gone.
 */
export async function cachedRootfsImage(
  rootfsDir: string, fstype: string, build: (path: string) => Promise<void>,
  cacheDir = process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR ?? DEFAULT_ROOTFS_CACHE_DIR,
): Promise<string | undefined> {
  const limit = cacheLimit();
  const layers = overlayLayersOf(rootfsDir);
  const key = layers && limit > 0 ? rootfsImageKey(fstype, layers) : undefined;
  if (!layers || !key) return undefined;
  const image = join(cacheDir, `${key}.${fstype}`);
  const record = join(cacheDir, `${key}.json`);
  try {
    statSync(record);
    const now = new Date();
    utimesSync(image, now, now);
    return image;
  } catch {
    // not cached yet
  }
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const building = ATOMIC_TEMPORARY(image, process.pid);
  try {
    await build(building);
    chmodSync(building, 0o600);
    renameSync(building, image);
    // The record last: an entry is whole once it is there.
    const entry: EntryRecord = { fstype, lowers: layers.lowers };
    writeFileAtomic(record, JSON.stringify(entry), 0o600, false);
  } finally {
    rmSync(building, { force: true });
  }
  sweep(cacheDir, limit);
  return image;
}
