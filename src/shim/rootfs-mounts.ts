// The container's root filesystem, mounted by the shim from the Mounts of CreateTaskRequest (an overlay with
// lowerdir/upperdir/workdir from the overlayfs snapshotter, or a bind) on BUNDLE/rootfs, with mount(8).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { RuntimeError } from '../errors/errors.js';

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
      // mount(8) spells a bind mount as an option; its fstype is then ignored.
      const type = mount.type === 'bind' || mount.type === 'rbind' ? 'none' : mount.type;
      const args = ['-t', type, ...(mount.options.length ? ['-o', mount.options.join(',')] : []), mount.source, target];
      await run('mount', args).catch((error: { stderr?: string; message: string }) => {
        throw new RuntimeError(`mount ${mount.type} ${mount.source} on ${target}: ${(error.stderr || error.message).trim()}`);
      });
    }
  } catch (error) {
    await unmountRootfs(target);
    throw error;
  }
}

function isMountPoint(path: string): boolean {
  const escaped = path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((line) => line.split(' ')[4] === escaped);
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
