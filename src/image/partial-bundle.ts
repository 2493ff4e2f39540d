// A bundle while it is made: a directory beside its target, `.NAME.runbox-partial-RANDOM`, 0700 so that no other
// user can reach the rootfs while it is written (nor use its setuid files and devices, nor add to it), renamed onto
// the target only once whole. A run that fails or is interrupted removes it; a run killed outright (SIGKILL) leaves
// it, and with it the lock file it held, `.NAME.runbox-partial-RANDOM.lock`: the next bundle made in the same
// directory removes every partial bundle whose lock nobody holds.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FileLock } from '../host/file-lock.js';
import { unmountUnder } from '../host/mounts.js';
import { lstatOrNull } from './unpack-paths.js';

const PARTIAL = /^\..*\.runbox-partial-[0-9a-f]{12}(\.lock)?$/;

/** Removes the partial bundles in `parent` that no running process holds, and their lock files. */
function removeStale(parent: string): void {
  const uid = process.getuid?.();
  const bases = new Set(readdirSync(parent).filter((name) => PARTIAL.test(name)).map((name) => name.replace(/\.lock$/, '')));
  for (const base of bases) {
    const path = join(parent, base);
    const lockPath = `${path}.lock`;
    // Only what runbox running as this user made: nothing another user put here is followed or removed.
    const dir = lstatOrNull(path);
    const lockFile = lstatOrNull(lockPath);
    if ((dir && (!dir.isDirectory() || dir.uid !== uid)) || (lockFile && (!lockFile.isFile() || lockFile.uid !== uid))) continue;
    const lock = FileLock.tryAcquire(lockPath);
    if (!lock) continue;
    try {
      // A lazily loaded rootfs is a mount: taken down first, never removed file by file.
      unmountUnder(path);
      rmSync(path, { recursive: true, force: true });
      rmSync(lockPath, { force: true });
    } finally {
      lock.release();
    }
  }
}

export class PartialBundle {
  readonly target: string;
  private state: 'new' | 'open' | 'published' | 'removed' = 'new';
  private lock: FileLock | undefined;
  private partial = '';

  /** `target`: the bundle directory, absent or empty (a symlink to one is followed). */
  constructor(target: string) {
    this.target = lstatOrNull(target) ? realpathSync(target) : target;
  }

  /** The directory the bundle is written to until `publish`. */
  get path(): string {
    return this.partial;
  }

  /** Checks the target, removes stale partial bundles beside it and makes this one; once only. */
  open(): void {
    if (this.state !== 'new') throw new Error(this.state === 'removed' ? 'interrupted' : 'bundle already made');
    this.checkTarget();
    const parent = dirname(this.target);
    mkdirSync(parent, { recursive: true, mode: 0o711 });
    removeStale(parent);
    this.partial = join(parent, `.${basename(this.target)}.runbox-partial-${randomBytes(6).toString('hex')}`);
    this.lock = FileLock.tryAcquire(`${this.partial}.lock`);
    mkdirSync(this.partial, 0o700);
    this.state = 'open';
  }

  /** Puts the whole bundle in place of the target. */
  publish(): void {
    if (this.state !== 'open') throw new Error('interrupted');
    try {
      renameSync(this.partial, this.target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new Error(`bundle directory ${this.target} is not empty`);
      if (code === 'EBUSY') throw new Error(`bundle directory ${this.target} is a mount point: give a directory inside it`);
      throw error;
    }
    this.state = 'published';
    this.unlock();
  }

  /** Removes what was written, unless published; any later `open` or `publish` fails. */
  remove(): void {
    const was = this.state;
    if (was === 'published' || was === 'removed') return;
    this.state = 'removed';
    if (was === 'open') {
      unmountUnder(this.partial);
      rmSync(this.partial, { recursive: true, force: true });
    }
    this.unlock();
  }

  private checkTarget(): void {
    const stat = lstatOrNull(this.target);
    if (!stat) return;
    if (!stat.isDirectory()) throw new Error(`bundle directory ${this.target} is not a directory`);
    if (readdirSync(this.target).length > 0) throw new Error(`bundle directory ${this.target} is not empty`);
  }

  private unlock(): void {
    if (!this.lock) return;
    rmSync(`${this.partial}.lock`, { force: true });
    this.lock.release();
    this.lock = undefined;
  }
}
