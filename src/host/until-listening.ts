// A unix socket of a process just spawned (QEMU's QMP and agent ports) appears a moment after it starts: until
// then connecting fails with ENOENT or ECONNREFUSED, and is tried again.
import { setTimeout as sleep } from 'node:timers/promises';

const RETRY_MS = 5;

/** `connect()`'s result once the socket listens; its other errors, or the signal's reason once it aborts. */
export async function untilListening<T>(connect: () => Promise<T>, signal: AbortSignal): Promise<T> {
  for (;;) {
    try {
      return await connect();
    } catch (error) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw error;
      await sleep(RETRY_MS);
    }
  }
}
