// Writing one tar entry into the rootfs: the node itself, then ownership, mode, xattrs and mtime, in that order
// (chown clears setuid bits and file capabilities, so it goes first). A node already at the path is removed, never
// written through: a regular file replaces a symlink, and a file linked from elsewhere is unlinked, not rewritten.
// Every node is named from its parent directory's descriptor (unpack-paths.ts), and its metadata set through a
// descriptor of the node itself, so nothing is reached by following a symlink.
// Filesystem calls are synchronous on purpose: each takes microseconds on a local filesystem, and the promise
// versions cost two thread-pool hand-offs apiece, which measured as 3× the CPU of GNU tar.
import { EntryRefusedError } from '../errors/errors.js';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, fchmodSync, fchownSync, fstatSync, futimesSync, lchownSync, linkSync, lutimesSync, mkdirSync, openSync, symlinkSync, utimesSync, writeSync, type Stats } from 'node:fs';
import type { Header } from 'tar-stream';
import { childKey, entryComponents, fdPath, lstatOrNull, MAX_PATH_BYTES, O_PATH, RootfsResolver, shortName, type Place } from './unpack-paths.js';

const IS_ROOT = process.getuid?.() === 0;

/** What one layer has written so far, by path in the rootfs ("a/b"): opaque directories keep it, and directory mtimes are set at the end. */
export interface LayerProgress {
  written: Set<string>;
  ancestorsOfWritten: Set<string>;
  directoryTimes: Array<[string[], Date]>;
  warn(message: string): void;
}

export function markWritten(progress: LayerProgress, real: string[]): void {
  progress.written.add(real.join('/'));
  for (let i = real.length - 1; i >= 0; i--) {
    const ancestor = real.slice(0, i).join('/');
    if (progress.ancestorsOfWritten.has(ancestor)) break;
    progress.ancestorsOfWritten.add(ancestor);
  }
}

/** Runs `create`; when something is already at `place`, removes it (never writing through it) and runs it again. */
function replacing<T>(resolver: RootfsResolver, place: Place, create: () => T): T {
  try {
    return create();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    resolver.remove(place);
    return create();
  }
}

/**
 * Runs a helper program on a node given as a descriptor, its fd 3: it names the node /proc/self/fd/3 (or a name in
 * that directory), so it follows no path of its own. Rejects with what it printed on stderr.
 */
function runOn(command: string, args: string[], fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (data: string) => {
      if (stderr.length < 4096) stderr += data;
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(stderr.replaceAll('/proc/self/fd/3/', '').trim() || `${command} exited with ${code ?? signal}`));
    });
  });
}

const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const OPEN_NODE = O_PATH | constants.O_NOFOLLOW;

/** A regular file: content, then ownership, mode, xattrs and mtime through its descriptor. */
async function writeFile(resolver: RootfsResolver, place: Place, header: Header, content: AsyncIterable<Buffer>, progress: LayerProgress): Promise<void> {
  const fd = replacing(resolver, place, () => openSync(fdPath(place.dir.fd, place.name), NEW_FILE, 0o600));
  try {
    for await (const chunk of content) {
      for (let done = 0; done < chunk.length; ) done += writeSync(fd, chunk, done);
    }
    if (IS_ROOT) fchownSync(fd, header.uid ?? 0, header.gid ?? 0);
    fchmodSync(fd, (header.mode ?? 0o644) & 0o7777);
    await applyXattrs(fd, undefined, header, progress);
    const mtime = header.mtime ?? new Date(0);
    futimesSync(fd, mtime, mtime);
  } finally {
    closeSync(fd);
  }
}

async function makeNode(place: Place, header: Header): Promise<void> {
  const kind = header.type === 'fifo' ? ['p'] : [header.type === 'block-device' ? 'b' : 'c', String(header.devmajor ?? 0), String(header.devminor ?? 0)];
  try {
    await runOn('mknod', ['-m', '600', '--', fdPath(3, place.name), ...kind], place.dir.fd);
  } catch (error) {
    throw new EntryRefusedError(`cannot make ${header.type}: ${(error as Error).message}`);
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

/** Sets the entry's xattrs on the node open as `fd`, or, for a symlink, on `name` in the directory open as `fd`. */
async function applyXattrs(fd: number, symlinkName: string | undefined, header: Header, progress: LayerProgress): Promise<void> {
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
    const target = symlinkName === undefined ? ['--', fdPath(3)] : ['-h', '--', fdPath(3, symlinkName)];
    try {
      await runOn('setfattr', ['-n', name, '-v', `0s${Buffer.from(value, 'utf8').toString('base64')}`, ...target], fd);
    } catch (error) {
      const message = (error as Error).message;
      if (/Operation not supported/.test(message)) continue;
      throw new EntryRefusedError(`cannot set xattr ${name}: ${message}`);
    }
  }
}

const NODE_CHECKS: Record<string, (stat: Stats) => boolean> = {
  directory: (stat) => stat.isDirectory(),
  'character-device': (stat) => stat.isCharacterDevice(),
  'block-device': (stat) => stat.isBlockDevice(),
  fifo: (stat) => stat.isFIFO(),
};

/**
 * Ownership, mode, xattrs and mtime (a directory's at the end of the layer) of a directory, device or fifo, through
 * an O_PATH descriptor of the node: /proc/self/fd/N leads to the node itself, whatever its name now leads to.
 */
async function applyMetadata(fd: number, real: string[], header: Header, progress: LayerProgress): Promise<void> {
  if (!NODE_CHECKS[header.type ?? '']?.(fstatSync(fd))) throw new EntryRefusedError(`the ${header.type} it made was replaced while it was being unpacked`);
  const node = fdPath(fd);
  if (IS_ROOT) chownSync(node, header.uid ?? 0, header.gid ?? 0);
  chmodSync(node, (header.mode ?? 0o644) & 0o7777);
  await applyXattrs(fd, undefined, header, progress);
  const mtime = header.mtime ?? new Date(0);
  if (header.type === 'directory') progress.directoryTimes.push([real, mtime]);
  else utimesSync(node, mtime, mtime);
}

async function applyMetadataAt(place: Place, real: string[], header: Header, progress: LayerProgress): Promise<void> {
  const fd = openSync(fdPath(place.dir.fd, place.name), OPEN_NODE);
  try {
    await applyMetadata(fd, real, header, progress);
  } finally {
    closeSync(fd);
  }
}

async function applySymlinkMetadata(place: Place, header: Header, progress: LayerProgress): Promise<void> {
  const path = fdPath(place.dir.fd, place.name);
  if (IS_ROOT) lchownSync(path, header.uid ?? 0, header.gid ?? 0);
  await applyXattrs(place.dir.fd, place.name, header, progress);
  const mtime = header.mtime ?? new Date(0);
  lutimesSync(path, mtime, mtime);
}

function makeHardlink(resolver: RootfsResolver, place: Place, linkname: string): void {
  const components = entryComponents(linkname);
  if (components.length === 0) throw new EntryRefusedError('hardlink to the rootfs itself');
  const parent = resolver.directory(components.slice(0, -1), false);
  const name = components[components.length - 1]!;
  const stat = parent && lstatOrNull(fdPath(parent.fd, name));
  if (!parent || !stat) throw new EntryRefusedError(`hardlink target ${shortName(linkname)} does not exist in the rootfs`);
  if (stat.isDirectory()) throw new EntryRefusedError(`hardlink target ${shortName(linkname)} is a directory`);
  if (parent.key === place.dir.key && name === place.name) return;
  replacing(resolver, place, () => linkSync(fdPath(parent.fd, name), fdPath(place.dir.fd, place.name)));
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
    if (header.type !== 'directory') throw new EntryRefusedError('the rootfs itself can only be a directory');
    await applyMetadata(resolver.root.fd, [], header, progress);
    return;
  }
  const dir = resolver.directory(components.slice(0, -1), true)!;
  const place: Place = { dir, name: components[components.length - 1]! };
  if (Buffer.byteLength(childKey(dir, place.name)) > MAX_PATH_BYTES) throw new EntryRefusedError(`its path in the rootfs is longer than ${MAX_PATH_BYTES} bytes`);
  const real = [...dir.real, place.name];
  const path = fdPath(dir.fd, place.name);
  switch (header.type) {
    case 'directory':
      replacing(resolver, place, () => {
        try {
          mkdirSync(path, 0o700);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST' && lstatOrNull(path)?.isDirectory()) return;
          throw error;
        }
      });
      markWritten(progress, real);
      await applyMetadataAt(place, real, header, progress);
      return;
    case 'file':
    case 'contiguous-file':
      await writeFile(resolver, place, header, content, progress);
      markWritten(progress, real);
      return;
    case 'symlink':
      replacing(resolver, place, () => symlinkSync(header.linkname ?? '', path));
      markWritten(progress, real);
      await applySymlinkMetadata(place, header, progress);
      return;
    case 'link':
      makeHardlink(resolver, place, header.linkname ?? '');
      markWritten(progress, real);
      return; // a hardlink shares its target's inode and metadata
    case 'character-device':
    case 'block-device':
    case 'fifo':
      resolver.remove(place);
      await makeNode(place, header);
      markWritten(progress, real);
      await applyMetadataAt(place, real, header, progress);
      return;
    default:
      throw new EntryRefusedError(`unsupported entry type ${String(header.type)}`);
  }
}
