// How far the kernel reads ahead in the files of a mounted filesystem: the read-ahead of the block device under it,
// set through sysfs.
import { statSync, writeFileSync } from 'node:fs';

/**
 * Sets the read-ahead of the block device that holds the filesystem mounted at `mountPoint`, in KiB. Files opened
 * after the call read ahead that far; those already open keep what they had.
 */
export function setReadahead(mountPoint: string, kib: number): void {
  const dev = statSync(mountPoint, { bigint: true }).dev;
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const path = `/sys/dev/block/${major}:${minor}/queue/read_ahead_kb`;
  try {
    writeFileSync(path, `${kib}\n`);
  } catch (error) {
    throw new Error(`cannot set the read-ahead of the device under ${mountPoint} (${path}): ${(error as Error).message}`);
  }
}
