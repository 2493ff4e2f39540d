// Resolving layer entry names inside a rootfs without ever leaving it. Every component of a parent directory is
// checked with lstat: real directories are walked into, missing ones created, and a symlink is followed only when
// its target (absolute targets taken from the rootfs's root, as the container will see them) names an existing
// directory inside the rootfs. Nothing else writes into the rootfs while a layer is applied, so a checked path
// stays valid until this resolver itself removes a directory (then `forget` drops what it had checked).
import { lstatSync, mkdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';

/** A refusal about one entry; the layer loop adds which layer and entry it was. */
export class EntryRefused extends Error {}

const MAX_SYMLINKS = 40;

/** The components of a tar entry name, [] for the rootfs itself; absolute names and `..` are refused. */
export function entryComponents(name: string): string[] {
  if (name.includes('\0')) throw new EntryRefused('name contains a NUL byte');
  if (name.startsWith('/')) throw new EntryRefused('absolute path');
  const components = name.split('/').filter((c) => c !== '' && c !== '.');
  if (components.includes('..')) throw new EntryRefused('path has a ".." component');
  return components;
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException).code;
}

export function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return null;
    throw error;
  }
}

export class RootfsResolver {
  /** Archive directory path → its real components inside the rootfs (every one a checked, real directory). */
  private readonly checked = new Map<string, string[]>();

  constructor(readonly rootfs: string) {}

  host(real: string[]): string {
    return join(this.rootfs, ...real);
  }

  /**
   * The real components of the directory an archive path names. Missing directories are created (as 0755 root,
   * the entry for them usually follows) when `create` is set and no symlink was followed to get there; with
   * `create` unset a missing directory gives null.
   */
  directory(components: string[], create: boolean): string[] | null {
    let known = components.length;
    while (known > 0 && !this.checked.has(components.slice(0, known).join('/'))) known--;
    let real = known > 0 ? [...this.checked.get(components.slice(0, known).join('/'))!] : [];
    for (let i = known; i < components.length; i++) {
      const resolved = this.step(real, components[i]!, create, false);
      if (!resolved) return null;
      real = resolved;
      this.checked.set(components.slice(0, i + 1).join('/'), real);
    }
    return real;
  }

  /** The host path of an existing node of any type, symlinks followed inside the rootfs; null when missing. */
  existing(components: string[]): string | null {
    try {
      const parent = this.directory(components.slice(0, -1), false);
      if (!parent || components.length === 0) return parent && this.host(parent);
      const real = this.step(parent, components[components.length - 1]!, false, true);
      return real && this.host(real);
    } catch (error) {
      if (error instanceof EntryRefused) return null;
      throw error;
    }
  }

  /** Walks one archive component from a checked directory, following symlinks only inside the rootfs. */
  private step(from: string[], component: string, create: boolean, anyType: boolean): string[] | null {
    const pending = [component];
    let real = [...from];
    let followed = 0;
    while (pending.length > 0) {
      const c = pending.shift()!;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        if (real.length === 0) throw new EntryRefused(`a symlink in its path points outside the rootfs`);
        real.pop();
        continue;
      }
      const next = [...real, c];
      const path = this.host(next);
      const stat = lstatOrNull(path);
      if (!stat) {
        if (followed > 0) throw new EntryRefused(`a symlink in its path points to a directory that does not exist in the rootfs`);
        if (!create) return null;
        mkdirSync(path, 0o755);
        real = next;
      } else if (stat.isDirectory() || (anyType && pending.length === 0 && !stat.isSymbolicLink())) {
        real = next;
      } else if (stat.isSymbolicLink()) {
        if (++followed > MAX_SYMLINKS) throw new EntryRefused('too many levels of symlinks in its path');
        const target = readlinkSync(path);
        if (target.startsWith('/')) real = [];
        pending.unshift(...target.split('/'));
      } else {
        throw new EntryRefused(`/${next.join('/')} in its path is not a directory`);
      }
    }
    return real;
  }

  /** Drops every checked directory: call after removing or replacing a directory. */
  forget(): void {
    this.checked.clear();
  }
}
