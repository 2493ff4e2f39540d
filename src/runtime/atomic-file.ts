import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';

/** Writes a file so that readers see either the old content or the new, never a part, even after a crash. */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): void {
  const temporary = `${path}.tmp-${process.pid}`;
  const fd = openSync(temporary, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    try {
      unlinkSync(temporary);
    } catch {
      // best effort
    }
    throw error;
  }
  closeSync(fd);
  renameSync(temporary, path);
}
