import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { ATOMIC_TEMPORARY } from '../generated/facts.js';

/**
 * Writes a file so that readers see either the old content or the new, never a part. With `durable` (the
 * default) the content is on disk before the rename, so a crash cannot lose it either; without, the write costs
 * no disk flush, which suits state that a reboot ends anyway (a runtime root under /run, as runc keeps its own).
 */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600, durable = true): void {
  const temporary = ATOMIC_TEMPORARY(path, process.pid);
  const fd = openSync(temporary, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    if (durable) fsyncSync(fd);
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
