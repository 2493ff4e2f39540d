// Room on the filesystem an image is written to. Downloads and unpacking stop before they would leave less than
// 1% of the filesystem's space, or of its inodes, available to unprivileged users (root's reserve is not counted
// as room), so that an image bigger than its filesystem fails cleanly instead of filling the host's disk.
import { statfsSync } from 'node:fs';

const KEPT_FREE = 0.01;

/** Why `bytes` more bytes in `files` more files would not fit on the filesystem of `path`; undefined when they fit. */
export function noRoom(path: string, bytes: number, files: number): string | undefined {
  const fs = statfsSync(path);
  const available = fs.bavail * fs.bsize;
  if (available - bytes < fs.blocks * fs.bsize * KEPT_FREE) {
    return `no room: ${bytes} more bytes would leave less than 1% of the filesystem free (${available} bytes available)`;
  }
  // Some filesystems (btrfs) have no fixed number of inodes and report none.
  if (fs.files > 0 && fs.ffree - files < fs.files * KEPT_FREE) {
    return `no room: ${files} more files would leave less than 1% of the filesystem's inodes free (${fs.ffree} available)`;
  }
  return undefined;
}
