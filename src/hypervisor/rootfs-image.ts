// A container's rootfs directory as a read-only filesystem image, which the microVM gets as a virtio block
// device and mounts under a writable overlay (agent/guest-rootfs.c). Both builders keep symlinks, hardlinks,
// device nodes, fifos, sockets, permissions (setuid/setgid/sticky too), ownership and timestamps.
import { execFile } from 'node:child_process';
import { existsSync, rmSync, statSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type RootfsFsType = 'erofs' | 'ext4';

/** The default: see README, "The microVM guest", for the measurements behind it. */
export const ROOTFS_FSTYPE: RootfsFsType = 'erofs';

/** A read-only filesystem image of a container rootfs dir (symlinks, hardlinks, device nodes, modes, ownership kept). */
export async function buildRootfsImage(rootfsDir: string, outPath: string, fstype: RootfsFsType = ROOTFS_FSTYPE): Promise<{ path: string; fstype: RootfsFsType }> {
  if (!existsSync(rootfsDir) || !statSync(rootfsDir).isDirectory()) {
    throw new Error(`cannot build a rootfs image: ${rootfsDir} is not a directory`);
  }
  rmSync(outPath, { force: true });
  try {
    if (fstype === 'erofs') await buildErofs(rootfsDir, outPath);
    else await buildExt4(rootfsDir, outPath);
  } catch (error) {
    rmSync(outPath, { force: true });
    const detail = (error as { stderr?: string }).stderr?.trim().split('\n').pop() ?? (error as Error).message;
    throw new Error(`cannot build a ${fstype} image of ${rootfsDir}: ${detail}`);
  }
  return { path: outPath, fstype };
}

async function buildErofs(dir: string, out: string): Promise<void> {
  // Uncompressed: the guest reads it through the page cache like any disk, without decompressing under TCG.
  await run('mkfs.erofs', ['--quiet', '--preserve-mtime', out, dir]);
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
