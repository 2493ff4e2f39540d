// Resolving layer entry names inside a rootfs without ever leaving it, and without trusting a path twice. A
// directory is reached by opening one component at a time, O_NOFOLLOW, from the descriptor of the one before it,
// so the kernel follows no symlink on the way, whoever put it there; runbox follows a symlink itself only when its
// target (absolute targets taken from the rootfs's root, as the container will see them) is an existing directory
// inside the rootfs. Every operation then names its node from its parent's descriptor (/proc/self/fd/N/NAME: Node
// has no *at() calls), so the directory that was checked is the one written into. Descriptors of recently used
// directories are kept (an inode, not a path: renaming or replacing what led to it changes nothing).
import { EntryRefusedError } from '../errors/errors.js';
import { closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, rmdirSync, unlinkSync, type Stats } from 'node:fs';

const MAX_SYMLINKS = 40;
/** PATH_MAX: no path in the container can be longer, and it bounds how deep a tree a layer can make. */
export const MAX_PATH_BYTES = 4096;
/** Directory descriptors kept open between entries. */
const KEPT_DIRECTORIES = 128;
/** Not in Node's fs.constants (Linux, every architecture Node runs on): a descriptor that only names a node. */
export const O_PATH = 0o10000000;
const OPEN_DIRECTORY = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** A directory of the rootfs, open: `real` is its path inside the rootfs, every component a real directory. */
export interface Dir {
  fd: number;
  real: string[];
  /** `real` joined with "/" ("" for the rootfs itself). */
  key: string;
}

/** A name in a directory of the rootfs: where an entry goes, or an existing node. */
export interface Place {
  dir: Dir;
  name: string;
}

/** The path of `name` in the directory open as `fd`, for calls that take a path; no symlink is followed to reach it. */
export function fdPath(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

export function childKey(dir: Dir, name: string): string {
  return dir.key === '' ? name : `${dir.key}/${name}`;
}

/** A name cut for an error line: layer entries can be kilobytes long. */
export function shortName(name: string, max = 200): string {
  return name.length <= max ? name : `${name.slice(0, max)}… (${Buffer.byteLength(name)} bytes)`;
}

/** The components of a tar entry name, [] for the rootfs itself; absolute names and `..` are refused. */
export function entryComponents(name: string): string[] {
  if (name.includes('\0')) throw new EntryRefusedError('name contains a NUL byte');
  if (name.startsWith('/')) throw new EntryRefusedError('absolute path');
  if (Buffer.byteLength(name) > MAX_PATH_BYTES) throw new EntryRefusedError(`name longer than ${MAX_PATH_BYTES} bytes`);
  const components = name.split('/').filter((c) => c !== '' && c !== '.');
  if (components.includes('..')) throw new EntryRefusedError('path has a ".." component');
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

/** The directory `name` in `dir` opened, or null when it is missing, not a directory or a symlink. */
function openDirectory(dir: Dir, name: string): number | null {
  try {
    return openSync(fdPath(dir.fd, name), OPEN_DIRECTORY);
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return null;
    throw error;
  }
}

/** Removes the content of the directory open as `fd`, never leaving it: subdirectories are opened O_NOFOLLOW. */
function emptyDirectory(fd: number): void {
  for (const name of readdirSync(fdPath(fd))) {
    const path = fdPath(fd, name);
    if (!lstatOrNull(path)?.isDirectory()) {
      unlinkSync(path);
      continue;
    }
    const child = openSync(path, OPEN_DIRECTORY);
    try {
      emptyDirectory(child);
    } finally {
      closeSync(child);
    }
    rmdirSync(path);
  }
}

export class RootfsResolver {
  readonly root: Dir;
  /** Open directories by real path, least recently used first. */
  private readonly open = new Map<string, Dir>();
  /** Descriptors dropped from `open` while an entry may still use them: closed by `settle`. */
  private retired: number[] = [];

  /** `rootfs`: the caller's path to it (a symlink to the rootfs itself is followed, as any path the caller gives). */
  constructor(readonly rootfs: string) {
    this.root = { fd: openSync(rootfs, constants.O_RDONLY | constants.O_DIRECTORY), real: [], key: '' };
  }

  /**
   * The directory an archive path names. Missing directories are created (as 0755 root, the entry for them usually
   * follows) when `create` is set and no symlink was followed to get there; with `create` unset a missing
   * directory gives null. The Dir stays open until the next `settle`.
   */
  directory(components: string[], create: boolean): Dir | null {
    let known = components.length;
    while (known > 0 && !this.open.has(components.slice(0, known).join('/'))) known--;
    let dir = known > 0 ? this.touch(components.slice(0, known).join('/')) : this.root;
    for (let i = known; i < components.length; i++) {
      const next = this.step(dir, components[i]!, create);
      if (!next) return null;
      dir = next;
    }
    return dir;
  }

  /**
   * An existing node that is not a symlink: symlinks on the way and at the end are followed inside the rootfs.
   * Null when it is missing, or when a symlink leads out of the rootfs, nowhere, or to a directory by `..`.
   */
  existing(components: string[]): Place | null {
    try {
      if (components.length === 0) return null;
      let dir = this.directory(components.slice(0, -1), false);
      let name = components[components.length - 1]!;
      for (let followed = 1; dir && followed <= MAX_SYMLINKS; followed++) {
        const path = fdPath(dir.fd, name);
        const stat = lstatOrNull(path);
        if (!stat) return null;
        if (!stat.isSymbolicLink()) return { dir, name };
        const link = readlinkSync(path);
        const target = link.split('/').filter((c) => c !== '' && c !== '.');
        const last = target.pop();
        if (last === undefined || last === '..') return null;
        dir = this.walk(link.startsWith('/') ? this.root : dir, target, false, followed);
        name = last;
      }
      return null;
    } catch (error) {
      if (error instanceof EntryRefusedError) return null;
      throw error;
    }
  }

  /** The directory at a real path (no symlink followed), or null when some component is no longer a directory. */
  realDirectory(real: string[]): Dir | null {
    let dir = this.root;
    for (const name of real) {
      const next = this.child(dir, name);
      if (!next) return null;
      dir = next;
    }
    return dir;
  }

  /** Opens a subdirectory for a walk over a tree (not kept): the caller closes it. */
  openChild(dir: Dir, name: string): Dir | null {
    const fd = openDirectory(dir, name);
    return fd === null ? null : { fd, real: [...dir.real, name], key: childKey(dir, name) };
  }

  /** Removes whatever is at `place` (a directory with its content), never following a symlink. */
  remove(place: Place): void {
    const path = fdPath(place.dir.fd, place.name);
    const stat = lstatOrNull(path);
    if (!stat) return;
    if (!stat.isDirectory()) {
      unlinkSync(path);
      return;
    }
    const fd = openDirectory(place.dir, place.name);
    if (fd !== null) {
      try {
        emptyDirectory(fd);
      } finally {
        closeSync(fd);
      }
    }
    rmdirSync(path);
    this.forget();
  }

  /** Drops every kept directory: call after removing or replacing a directory. Open Dirs stay valid until `settle`. */
  forget(): void {
    for (const dir of this.open.values()) this.retired.push(dir.fd);
    this.open.clear();
  }

  /** Between entries: closes what was dropped, and the least recently used directories beyond what is kept. */
  settle(): void {
    for (const fd of this.retired) closeSync(fd);
    this.retired = [];
    for (const [key, dir] of this.open) {
      if (this.open.size <= KEPT_DIRECTORIES) break;
      this.open.delete(key);
      closeSync(dir.fd);
    }
  }

  close(): void {
    this.forget();
    this.settle();
    closeSync(this.root.fd);
  }

  private touch(key: string): Dir {
    const dir = this.open.get(key)!;
    this.open.delete(key);
    this.open.set(key, dir);
    return dir;
  }

  /** The real subdirectory `name` of `dir`, kept open; null when it is not a directory (or missing). */
  private child(dir: Dir, name: string): Dir | null {
    const key = childKey(dir, name);
    if (this.open.has(key)) return this.touch(key);
    if (Buffer.byteLength(key) > MAX_PATH_BYTES) throw new EntryRefusedError(`its path in the rootfs is longer than ${MAX_PATH_BYTES} bytes`);
    const fd = openDirectory(dir, name);
    if (fd === null) return null;
    const child = { fd, real: [...dir.real, name], key };
    this.open.set(key, child);
    return child;
  }

  private parent(dir: Dir): Dir {
    const parent = this.realDirectory(dir.real.slice(0, -1));
    if (!parent) throw new EntryRefusedError(`/${dir.real.slice(0, -1).join('/')} in its path is no longer a directory`);
    return parent;
  }

  private walk(from: Dir, components: string[], create: boolean, followed: number): Dir | null {
    let dir = from;
    for (const component of components) {
      const next = this.step(dir, component, create, followed);
      if (!next) return null;
      dir = next;
    }
    return dir;
  }

  /** Walks one archive component from a directory, following symlinks only inside the rootfs. */
  private step(from: Dir, component: string, create: boolean, alreadyFollowed = 0): Dir | null {
    const pending = [component];
    let dir = from;
    let followed = alreadyFollowed;
    while (pending.length > 0) {
      const c = pending.shift()!;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        if (dir.real.length === 0) throw new EntryRefusedError('a symlink in its path points outside the rootfs');
        dir = this.parent(dir);
        continue;
      }
      const next = this.child(dir, c);
      if (next) {
        dir = next;
        continue;
      }
      const path = fdPath(dir.fd, c);
      const stat = lstatOrNull(path);
      if (!stat) {
        if (followed > 0) throw new EntryRefusedError('a symlink in its path points to a directory that does not exist in the rootfs');
        if (!create) return null;
        mkdirSync(path, 0o755);
        dir = this.child(dir, c) ?? this.refuse([...dir.real, c]);
      } else if (stat.isSymbolicLink()) {
        if (++followed > MAX_SYMLINKS) throw new EntryRefusedError('too many levels of symlinks in its path');
        const target = readlinkSync(path);
        if (target.startsWith('/')) dir = this.root;
        pending.unshift(...target.split('/'));
      } else {
        this.refuse([...dir.real, c]);
      }
    }
    return dir;
  }

  private refuse(real: string[]): never {
    throw new EntryRefusedError(`/${shortName(real.join('/'))} in its path is not a directory`);
  }
}
