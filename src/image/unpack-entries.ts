// Writing one tar entry into the rootfs: the node itself, then ownership, mode, xattrs and mtime, in that order
// (chown clears setuid bits and file capabilities, so it goes first). A node already at the path is removed, never
// written through: a regular file replaces a symlink, and a file linked from elsewhere is unlinked, not rewritten.
// Filesystem calls are synchronous on purpose: each takes microseconds on a local filesystem, and the promise
// versions cost two thread-pool hand-offs apiece, which measured as 3× the CPU of GNU tar.
import { execFile } from 'node:child_process';
import { chmodSync, closeSync, constants, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lutimesSync, mkdirSync, openSync, rmSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Header } from 'tar-stream';
import { EntryRefused, RootfsResolver, entryComponents, lstatOrNull } from './unpack-paths.js';

const run = promisify(execFile);
const IS_ROOT = process.getuid?.() === 0;

/** What one layer has written so far: opaque directories keep it, and directory mtimes are set at the end. */
export interface LayerProgress {
  written: Set<string>;
  ancestorsOfWritten: Set<string>;
  directoryTimes: Array<[string, Date]>;
  warn(message: string): void;
}

export function markWritten(progress: LayerProgress, resolver: RootfsResolver, real: string[]): void {
  progress.written.add(resolver.host(real));
  for (let i = real.length - 1; i >= 0; i--) {
    const ancestor = resolver.host(real.slice(0, i));
    if (progress.ancestorsOfWritten.has(ancestor)) break;
    progress.ancestorsOfWritten.add(ancestor);
  }
}

/** Removes whatever is at `path` (a directory with its content); the resolver forgets directories it checked. */
export function removeNode(resolver: RootfsResolver, path: string): void {
  const stat = lstatOrNull(path);
  if (!stat) return;
  if (stat.isDirectory()) {
    rmSync(path, { recursive: true, force: true });
    resolver.forget();
  } else {
    unlinkSync(path);
  }
}

/** Runs `create`; when something is already at `path`, removes it (never writing through it) and runs it again. */
function replacing<T>(resolver: RootfsResolver, path: string, create: () => T): T {
  try {
    return create();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    removeNode(resolver, path);
    return create();
  }
}

const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** A regular file: content, then ownership, mode, xattrs and mtime through its descriptor. */
async function writeFile(resolver: RootfsResolver, path: string, header: Header, content: AsyncIterable<Buffer>, progress: LayerProgress): Promise<void> {
  const fd = replacing(resolver, path, () => openSync(path, NEW_FILE, 0o600));
  try {
    for await (const chunk of content) {
      for (let done = 0; done < chunk.length; ) done += writeSync(fd, chunk, done);
    }
    if (IS_ROOT) fchownSync(fd, header.uid ?? 0, header.gid ?? 0);
    fchmodSync(fd, (header.mode ?? 0o644) & 0o7777);
    await applyXattrs(path, header, progress);
    const mtime = header.mtime ?? new Date(0);
    futimesSync(fd, mtime, mtime);
  } finally {
    closeSync(fd);
  }
}

async function makeNode(path: string, header: Header): Promise<void> {
  const kind = header.type === 'fifo' ? ['p'] : [header.type === 'block-device' ? 'b' : 'c', String(header.devmajor ?? 0), String(header.devminor ?? 0)];
  try {
    await run('mknod', ['-m', '600', '--', path, ...kind]);
  } catch (error) {
    throw new EntryRefused(`cannot make ${header.type}: ${((error as { stderr?: string }).stderr ?? String(error)).trim()}`);
  }
}

/**
 * The entry's header with what its PAX records say of uid, gid and mtime: tar-stream applies a PAX header's path,
 * linkpath and size only, and a uid or gid over 2097151 (the ustar field's limit, as Go's archive/tar writes it),
 * or an mtime with a fraction of a second, is only there.
 */
export function withPaxOverrides(header: Header): Header {
  const pax = header.pax as Record<string, string> | null | undefined;
  if (!pax) return header;
  const id = (value: string | undefined) => (value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined);
  const uid = id(pax.uid);
  const gid = id(pax.gid);
  const mtime = pax.mtime !== undefined && /^-?\d+(\.\d+)?$/.test(pax.mtime) ? new Date(Number(pax.mtime) * 1000) : undefined;
  return { ...header, ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}), ...(mtime ? { mtime } : {}) };
}

// xattrs come as PAX records SCHILY.xattr.NAME. security.selinux is left to the host's labelling policy; a
// filesystem that cannot hold xattrs (ENOTSUP) is tolerated as containerd does. tar-stream decodes PAX values as
// UTF-8, so a value that was not valid UTF-8 cannot be rebuilt byte for byte: it is skipped with a warning.
const XATTR_PREFIX = 'SCHILY.xattr.';

async function applyXattrs(path: string, header: Header, progress: LayerProgress): Promise<void> {
  const pax = header.pax as Record<string, string> | null | undefined;
  if (!pax) return;
  for (const [key, value] of Object.entries(pax)) {
    if (!key.startsWith(XATTR_PREFIX)) continue;
    const name = key.slice(XATTR_PREFIX.length);
    if (name === 'security.selinux') continue;
    if (value.includes('\ufffd')) {
      progress.warn(`xattr ${name} skipped: its value is not valid UTF-8`);
      continue;
    }
    try {
      await run('setfattr', ['-h', '-n', name, '-v', `0s${Buffer.from(value, 'utf8').toString('base64')}`, '--', path]);
    } catch (error) {
      const stderr = ((error as { stderr?: string }).stderr ?? String(error)).trim();
      if (/Operation not supported/.test(stderr)) continue;
      throw new EntryRefused(`cannot set xattr ${name}: ${stderr}`);
    }
  }
}

async function applyMetadata(path: string, header: Header, symlinkNode: boolean, progress: LayerProgress): Promise<void> {
  if (IS_ROOT) lchownSync(path, header.uid ?? 0, header.gid ?? 0);
  if (!symlinkNode) chmodSync(path, (header.mode ?? 0o644) & 0o7777);
  await applyXattrs(path, header, progress);
  const mtime = header.mtime ?? new Date(0);
  if (header.type === 'directory') progress.directoryTimes.push([path, mtime]);
  else lutimesSync(path, mtime, mtime);
}

/** The real components of an entry's target path, its parent directory resolved (and created) in the rootfs. */
function placeEntry(resolver: RootfsResolver, components: string[]): string[] {
  const parent = resolver.directory(components.slice(0, -1), true);
  return [...parent!, components[components.length - 1]!];
}

function makeHardlink(resolver: RootfsResolver, path: string, linkname: string): void {
  const components = entryComponents(linkname);
  if (components.length === 0) throw new EntryRefused('hardlink to the rootfs itself');
  const parent = resolver.directory(components.slice(0, -1), false);
  const target = parent && resolver.host([...parent, components[components.length - 1]!]);
  const stat = target && lstatOrNull(target);
  if (!stat) throw new EntryRefused(`hardlink target ${linkname} does not exist in the rootfs`);
  if (stat.isDirectory()) throw new EntryRefused(`hardlink target ${linkname} is a directory`);
  if (target === path) return;
  replacing(resolver, path, () => linkSync(target, path));
}

/** Applies one non-whiteout entry. */
export async function applyEntry(
  resolver: RootfsResolver,
  header: Header,
  content: AsyncIterable<Buffer>,
  progress: LayerProgress,
): Promise<void> {
  const components = entryComponents(header.name);
  if (components.length === 0) {
    if (header.type !== 'directory') throw new EntryRefused('the rootfs itself can only be a directory');
    await applyMetadata(resolver.rootfs, header, false, progress);
    return;
  }
  const real = placeEntry(resolver, components);
  const path = resolver.host(real);
  switch (header.type) {
    case 'directory':
      replacing(resolver, path, () => {
        try {
          mkdirSync(path, 0o700);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST' && lstatOrNull(path)?.isDirectory()) return;
          throw error;
        }
      });
      break;
    case 'file':
    case 'contiguous-file':
      await writeFile(resolver, path, header, content, progress);
      markWritten(progress, resolver, real);
      return;
    case 'symlink':
      replacing(resolver, path, () => symlinkSync(header.linkname ?? '', path));
      break;
    case 'link':
      await makeHardlink(resolver, path, header.linkname ?? '');
      markWritten(progress, resolver, real);
      return; // a hardlink shares its target's inode and metadata
    case 'character-device':
    case 'block-device':
    case 'fifo':
      removeNode(resolver, path);
      await makeNode(path, header);
      break;
    default:
      throw new EntryRefused(`unsupported entry type ${String(header.type)}`);
  }
  markWritten(progress, resolver, real);
  await applyMetadata(path, header, header.type === 'symlink', progress);
}
