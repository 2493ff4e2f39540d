// flock(2) locks shared between processes: the kernel drops them when the holder dies, so a process killed with
// SIGKILL never leaves a lock behind.
import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';

type Mode = 'ex' | 'sh' | 'exnb' | 'un';
interface FsExt {
  flock(fd: number, flags: Mode, callback: (error: NodeJS.ErrnoException | null) => void): void;
  flockSync(fd: number, flags: Mode): void;
}

// Loaded on first use: it is a native addon.
let fsExt: FsExt | undefined;
function fsext(): FsExt {
  fsExt ??= createRequire(import.meta.url)('fs-ext') as FsExt;
  return fsExt;
}

function flock(fd: number, mode: Mode): Promise<void> {
  return new Promise((resolve, reject) => fsext().flock(fd, mode, (error) => (error ? reject(error) : resolve())));
}

function wouldBlock(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK';
}

export class FileLock {
  private constructor(private fd: number | undefined) {}

  /** Waits for the lock: exclusive, or shared with other shared holders. */
  static async acquire(path: string, mode: 'ex' | 'sh' = 'ex'): Promise<FileLock> {
    const fd = openSync(path, 'a', 0o600);
    try {
      await flock(fd, mode);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    return new FileLock(fd);
  }

  /**
   * The exclusive lock if nobody holds it now, else undefined. Asked without waiting, so synchronously: that
   * never starts libuv's thread pool, which the lease of a microVM's port on every CLI call would pay for.
   */
  static tryAcquire(path: string): FileLock | undefined {
    const fd = openSync(path, 'a', 0o600);
    try {
      fsext().flockSync(fd, 'exnb');
    } catch (error) {
      closeSync(fd);
      if (wouldBlock(error)) return undefined;
      throw error;
    }
    return new FileLock(fd);
  }

  release(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Runs `body` holding the lock at `path`. */
export async function withLock<T>(path: string, mode: 'ex' | 'sh', body: () => Promise<T>): Promise<T> {
  const lock = await FileLock.acquire(path, mode);
  try {
    return await body();
  } finally {
    lock.release();
  }
}
