// Waits for this process's stdout and stderr to hand the kernel what was written to them. Node writes to a pipe
// without blocking: what a full pipe (64 KiB) does not take waits in Node's queue, and a process.exit() before
// it has gone out loses it (`runbox state ID | reader` cut at 65536 bytes).
import type { Writable } from 'node:stream';

function drained(stream: Writable): Promise<void> {
  if (stream.writableLength === 0 || stream.destroyed) return Promise.resolve();
  // Writes complete in order: this one's callback runs once everything before it has gone (or failed).
  return new Promise((resolve) => stream.write('', () => resolve()));
}

export async function stdioDrained(): Promise<void> {
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
}
