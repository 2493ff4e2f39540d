// A lazily served rootfs as a microVM's disk: the bundle's rootfs mount records (DIR/.lazy/disk.json) which store
// and image it is, and the qemu driver attaches that image over NBD from the store's lazy loader instead of
// building a filesystem image of the rootfs directory (which would read, and so fetch, every file).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../host/atomic-file.js';
import { connectLoader } from './loader-client.js';
import { imageFileName, loaderPaths } from './loader-paths.js';
import type { RegistrySettings } from './loader-protocol.js';
import { LazyLoaderError } from '../errors/errors.js';

export interface LazyDisk {
  /** The loader's NBD socket and the export to ask it for. */
  nbd: string;
  export: string;
}

interface DiskRecord {
  store: string;
  image: string;
  manifest: string;
  registry: RegistrySettings;
}

function recordPath(bundle: string): string {
  return join(bundle, '.lazy', 'disk.json');
}

export function recordLazyDisk(bundle: string, record: DiskRecord): void {
  writeFileAtomic(recordPath(bundle), JSON.stringify(record, null, 2));
}

/** Whether the rootfs `rootfs` (a bundle's `rootfs`) is lazily served (nothing is started). */
export function isLazyRootfs(rootfs: string): boolean {
  return existsSync(recordPath(dirname(rootfs)));
}

/**
 * The lazy disk of a container whose rootfs is `rootfs` (a bundle's `rootfs`), with its loader serving it
 * (started again when it is not running); undefined when the rootfs is not lazily served.
 */
export async function lazyDiskOf(rootfs: string): Promise<LazyDisk | undefined> {
  const path = recordPath(dirname(rootfs));
  if (!existsSync(path)) return undefined;
  const record = JSON.parse(readFileSync(path, 'utf8')) as DiskRecord;
  const loader = await connectLoader(record.store);
  try {
    const reply = await loader!.ask({ op: 'open', image: record.image, registry: record.registry });
    if (!reply.ok) throw new LazyLoaderError(`lazy rootfs ${rootfs}: ${reply.error}`);
  } finally {
    loader!.close();
  }
  return { nbd: loaderPaths(record.store).nbd, export: imageFileName(record.manifest) };
}
