// flock(2) locks shared between processes: the kernel drops them when the holder dies, so a process killed with
// SIGKILL never leaves a lock behind.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';

type Mode = 'ex' | 'sh' | 'exnb' | 'shnb' | 'un';
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

/** Loads the addon now rather than at the first lock (a pooled process, before it is taken). */
export function preloadFileLocks(): void {
  fsext();
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

  /**
   * Waits for the lock: exclusive, or shared with other shared holders. A free lock is taken synchronously (the
   * common case, which then never starts libuv's thread pool); a held one is waited for off the event loop.
   */
  static async acquire(path: string, mode: 'ex' | 'sh' = 'ex'): Promise<FileLock> {
    return FileLock.lockFd(openSync(path, 'a', 0o600), mode);
  }

  /**
   * The exclusive lock on a lock file that must already exist, as a container's does: undefined when it does not,
   * or when it was unlinked while this process waited (its holder removed what it guarded).
   */
  static async acquireExisting(path: string): Promise<FileLock | undefined> {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const lock = await FileLock.lockFd(fd, 'ex');
    if (fstatSync(fd).nlink === 0) {
      lock.release();
      return undefined;
    }
    return lock;
  }

  private static async lockFd(fd: number, mode: 'ex' | 'sh'): Promise<FileLock> {
    try {
      try {
        fsext().flockSync(fd, mode === 'ex' ? 'exnb' : 'shnb');
      } catch (error) {
        if (!wouldBlock(error)) throw error;
        await flock(fd, mode);
      }
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

  /** The locked descriptor, for a child process to hold the lock with this one (a spawn's stdio). */
  get descriptor(): number | undefined {
    return this.fd;
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
