// A container's rootfs directory as a read-only filesystem image, which the microVM gets as a virtio block
// device and mounts under a writable overlay (native/agent/guest-rootfs.c). Both builders keep symlinks, hardlinks,
// device nodes, fifos, sockets, permissions (setuid/setgid/sticky too), ownership and timestamps.
import { execFile } from 'node:child_process';
import { closeSync, createReadStream, createWriteStream, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { writeFileAtomic } from '../../host/atomic-file.js';
import { vmFiles } from './qemu-command.js';
import { cachedRootfsImage } from './rootfs-image-cache.js';
import { SandboxError } from '../../errors/errors.js';

const run = promisify(execFile);

export type RootfsFsType = 'erofs' | 'ext4';

/** The default: see docs/microvm.md, "The guest", for the measurements behind it. */
export const ROOTFS_FSTYPE: RootfsFsType = 'erofs';

function checkRootfsDir(rootfsDir: string): void {
  if (!existsSync(rootfsDir) || !statSync(rootfsDir).isDirectory()) {
    throw new SandboxError(`cannot build a rootfs image: ${rootfsDir} is not a directory`);
  }
}

/**
 * A read-only filesystem image of a container rootfs dir (symlinks, hardlinks, device nodes, modes, ownership kept).
 * `reproducible` (erofs): the same directory always makes the same bytes (a fixed UUID and build time), so that a
 * digest of the image can be computed ahead (an enclave's reference values).
 */
export async function buildRootfsImage(
  rootfsDir: string, outPath: string, fstype: RootfsFsType = ROOTFS_FSTYPE, reproducible = false,
): Promise<{ path: string; fstype: RootfsFsType }> {
  checkRootfsDir(rootfsDir);
  rmSync(outPath, { force: true });
  try {
    if (fstype === 'erofs') await buildErofs(rootfsDir, outPath, reproducible);
    else await buildExt4(rootfsDir, outPath);
  } catch (error) {
    rmSync(outPath, { force: true });
    const stderr = (error as { stderr?: string }).stderr?.trim();
    const detail = stderr ? stderr.split('\n').pop() : (error as Error).message;
    throw new SandboxError(`cannot build a ${fstype} image of ${rootfsDir}: ${detail}`);
  }
  return { path: outPath, fstype };
}

/** The UUID of a reproducible image: any fixed one. */
const FIXED_UUID = '6e5e8d3c-0000-4000-8000-72756e626f78';

async function buildErofs(dir: string, out: string, reproducible: boolean): Promise<void> {
  // Uncompressed: the guest reads it through the page cache like any disk, without decompressing under TCG.
  await run('mkfs.erofs', ['--quiet', '--preserve-mtime', ...(reproducible ? ['-U', FIXED_UUID] : []), out, dir],
    reproducible ? { env: { ...process.env, SOURCE_DATE_EPOCH: '0' } } : {});
}

async function buildExt4(dir: string, out: string): Promise<void> {
  const { kib, inodes } = await usage(dir);
  // The image is a sparse file: room to spare costs nothing on the host's disk.
  const sizeKib = Math.ceil(kib * 1.2 + inodes / 4 + 8192);
  await run('mkfs.ext4', [
    '-q', '-F', '-d', dir, '-b', '4096', '-m', '0', '-I', '256', '-N', String(inodes + 64),
    '-O', '^has_journal,^resize_inode', '-E', 'lazy_itable_init=1,nodiscard', out, `${sizeKib}k`,
  ]);
  // mke2fs adds a lost+found the container must not see, and that touches the root's mtime.
  const rootMtime = Math.floor(statSync(dir).mtimeMs / 1000);
  const debugfs = run('debugfs', ['-w', '-f', '-', out]);
  debugfs.child.stdin!.end(`rmdir lost+found\nsif / mtime @${rootMtime}\n`);
  await debugfs;
}

async function usage(dir: string): Promise<{ kib: number; inodes: number }> {
  const total = async (option: string) => Number((await run('du', ['-s', option, dir])).stdout.split('\t')[0]);
  const [kib, inodes] = await Promise.all([total('-k'), total('--inodes')]);
  return { kib, inodes };
}

/**
 * The size of the disk a VM gets for its rootfs, whatever the image: QEMU sizes a disk when it opens it, at its
 * start, and the image is built while the guest boots (fillRootfsDisk). The file is sparse, and the guest reads
 * past the image's end as zeros (it never does: the filesystem knows its own size).
 */
export const ROOTFS_DISK_BYTES = 2 ** 40;

/** The file a VM's rootfs disk is before its image is in it: empty and ROOTFS_DISK_BYTES long (0600). */
export function createRootfsDisk(rootfsDir: string, diskPath: string): void {
  checkRootfsDir(rootfsDir);
  createEmptyDisk(diskPath);
}

/** An empty disk of ROOTFS_DISK_BYTES (0600): a template VM's, which no container's rootfs is ever in. */
export function createEmptyDisk(diskPath: string): void {
  const fd = openSync(diskPath, 'w', 0o600);
  try {
    ftruncateSync(fd, ROOTFS_DISK_BYTES);
  } finally {
    closeSync(fd);
  }
}

/** Where the images in a VM's disk start: each at a multiple of this, after the one before. */
export const DISK_IMAGE_ALIGNMENT = 2 ** 20;

/** The offset just after an image of `size` bytes at `offset`, rounded up to the next image's start. */
export function nextImageOffset(offset: number, size: number): number {
  return Math.ceil((offset + size) / DISK_IMAGE_ALIGNMENT) * DISK_IMAGE_ALIGNMENT;
}

/**
 * Builds the image of rootfsDir into a disk from createRootfsDisk at `offset` (0: the VM's first container), which
 * a VM may have open already: beside it first, then copied in without truncating it (QEMU keeps the size it saw;
 * mkfs would truncate its output). A rootfs that is its image's layers alone comes from the cache of such images
 * (rootfs-image-cache.ts), but for an enclave's (reproducible, with what it appends), which is its own. Returns the
 * image's size.
 */
export async function fillRootfsDisk(
  rootfsDir: string, diskPath: string, offset = 0, fstype: RootfsFsType = ROOTFS_FSTYPE,
  options: { reproducible?: boolean; appended?: (image: string) => Promise<void> } = {},
): Promise<number> {
  if (!options.reproducible && !options.appended) {
    const cached = await cachedRootfsImage(rootfsDir, fstype, async (path) => {
      await buildRootfsImage(rootfsDir, path, fstype);
    });
    const fd = cached === undefined ? undefined : openIfThere(cached);
    if (fd !== undefined) return copyIntoDisk(createReadStream('', { fd, highWaterMark: COPY_CHUNK }), fstatSync(fd).size, rootfsDir, diskPath, offset, fstype);
  }
  const staging = `${diskPath}.building-${offset}`;
  try {
    await buildRootfsImage(rootfsDir, staging, fstype, options.reproducible);
    // What a caller adds after the image (an enclave's dm-verity hash tree) goes into the disk with it.
    await options.appended?.(staging);
    return await copyIntoDisk(createReadStream(staging, { highWaterMark: COPY_CHUNK }), statSync(staging).size, rootfsDir, diskPath, offset, fstype);
  } finally {
    rmSync(staging, { force: true });
  }
}

/** The copy's reads and writes: few and large (each is a trip through libuv's thread pool). */
const COPY_CHUNK = 1 << 20;

function openIfThere(path: string): number | undefined {
  try {
    return openSync(path, 'r');
  } catch {
    return undefined;
  }
}

async function copyIntoDisk(
  image: Readable, size: number, rootfsDir: string, diskPath: string, offset: number, fstype: RootfsFsType,
): Promise<number> {
  if (offset + size > ROOTFS_DISK_BYTES) {
    image.destroy();
    throw new SandboxError(`the ${fstype} image of ${rootfsDir} does not fit in the VM's rootfs disk (${ROOTFS_DISK_BYTES} bytes, ${offset} used)`);
  }
  await pipeline(image, createWriteStream(diskPath, { flags: 'r+', start: offset }));
  return size;
}

/** Records that the disk of the VM in `dir` holds images up to `end` (the next goes there). */
export function recordDiskEnd(dir: string, end: number): void {
  writeFileAtomic(vmFiles(dir).diskEnd, `${end}\n`, 0o600, false);
}

/**
 * Builds the image of rootfsDir into the disk of the VM in `dir` (a running VM's, which reads it at once), after
 * the images already there. One caller at a time per VM (the process that holds the sandbox).
 */
export async function appendToDisk(dir: string, rootfsDir: string): Promise<{ offset: number; size: number }> {
  const offset = Number(readFileSync(vmFiles(dir).diskEnd, 'utf8'));
  if (!Number.isSafeInteger(offset) || offset <= 0) throw new SandboxError(`${vmFiles(dir).diskEnd} does not hold an offset`);
  const size = await fillRootfsDisk(rootfsDir, vmFiles(dir).image, offset);
  recordDiskEnd(dir, nextImageOffset(offset, size));
  return { offset, size };
}
