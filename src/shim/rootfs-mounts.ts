// The container's root filesystem, mounted by the shim from the Mounts of CreateTaskRequest (an overlay with
// lowerdir/upperdir/workdir from the overlayfs snapshotter, or a bind) on BUNDLE/rootfs, by mount(2).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { RuntimeError } from '../errors/errors.js';
import { mountAddon } from '../host/mount-addon.js';
import { isMountPoint } from '../host/mounts.js';
import { MS, parseMountOptions } from '../oci/mount-options.js';

const run = promisify(execFile);

export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

export async function mountRootfs(mounts: Mount[], target: string): Promise<void> {
  try {
    for (const mount of mounts) {
      if (mount.target) throw new RuntimeError(`rootfs mount with a target (${mount.target}) is not supported`);
      try {
        mountOne(mount, target);
      } catch (error) {
        throw new RuntimeError(`mount ${mount.type} ${mount.source} on ${target}: ${(error as Error).message}`);
      }
    }
  } catch (error) {
    await unmountRootfs(target);
    throw error;
  }
}

/**
 * One mount by mount(2), its options taken as mount(8) takes them: flags, and the rest as the filesystem's data. A
 * bind mount (type bind, or the option bind or rbind) that asks for read-only flags is remounted with them, as a
 * bind mount ignores them.
 */
function mountOne(mount: Mount, target: string): void {
  const { flags, data } = parseMountOptions(mount.options);
  const bind = (flags & MS.BIND) !== 0 || mount.type === 'bind' || mount.type === 'rbind';
  const { mount: mountCall } = mountAddon();
  if (!bind) {
    mountCall(mount.source, target, mount.type, flags, data || null);
    return;
  }
  const recursive = mount.type === 'rbind' || (flags & MS.REC) !== 0 ? MS.REC : 0;
  mountCall(mount.source, target, null, MS.BIND | recursive, null);
  const remountFlags = flags & ~(MS.BIND | MS.REC);
  if (remountFlags) mountCall(null, target, null, MS.REMOUNT | MS.BIND | remountFlags, null);
}

async function unmountOnce(target: string): Promise<void> {
  await run('umount', [target]).catch(async () => {
    // Busy (a process of the container still holds it): detach it now, the kernel frees it when released.
    await run('umount', ['-l', target]).catch(() => {});
  });
}

/** Unmounts everything stacked on target; a target that is no mount point is left as it is. */
export async function unmountRootfs(target: string): Promise<void> {
  for (let i = 0; i < 16 && isMountPoint(target); i++) await unmountOnce(target);
}
