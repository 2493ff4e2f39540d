import { closeSync, fstatSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';

interface FsExt {
  flock(fd: number, flags: 'ex', callback: (error: Error | null) => void): void;
  flockSync(fd: number, flags: 'exnb'): void;
}

// Loaded on first use: it is a native addon, and most commands never lock.
let fsExt: FsExt | undefined;

/**
 * Takes the lock at once when it is free (the common case, which then never starts libuv's thread pool);
 * otherwise waits for it without blocking the event loop.
 */
async function lockExclusive(fd: number): Promise<void> {
  fsExt ??= createRequire(import.meta.url)('fs-ext') as FsExt;
  try {
    fsExt.flockSync(fd, 'exnb');
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' && (error as NodeJS.ErrnoException).code !== 'EWOULDBLOCK') throw error;
  }
  await new Promise<void>((resolve, reject) => fsExt!.flock(fd, 'ex', (error) => (error ? reject(error) : resolve())));
}

/**
 * A lock on one container, held across processes with flock(2): the kernel drops it when its holder dies, so a
 * killed CLI never leaves a stale lock. The lock file lives in the container's state directory; when the holder
 * deletes the container, later waiters find their lock file unlinked and learn the container is gone.
 */
export class ContainerLock {
  private constructor(private readonly fd: number) {}

  /** With `create`, makes the lock file (a new container); otherwise a missing file means no container. */
  static async acquire(path: string, create = false): Promise<ContainerLock | undefined> {
    let fd: number;
    try {
      fd = openSync(path, create ? 'a' : 'r', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      await lockExclusive(fd);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    if (fstatSync(fd).nlink === 0) {
      closeSync(fd);
      return undefined;
    }
    return new ContainerLock(fd);
  }

  release(): void {
    closeSync(this.fd);
  }
}
