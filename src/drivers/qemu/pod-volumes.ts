// A pod's host directories in its microVM (hostPath and emptyDir volumes, secrets and configmaps: CRI gives them
// all as bind mounts of host directories). QEMU exports one host directory per VM over virtio-9p (mount tag
// `volumes`), which the guest mounts once; each volume is bind-mounted into that export on the host when its
// container is created (a mount made under a 9p export after the guest mounted it appears in the guest, live
// both ways), read-only where the container's mount is, and unmounted when the container is deleted or the VM
// ends. The export lives outside the VM's own directory, which is removed recursively: no removal can reach
// into a volume through it, and the export's directories are removed with rmdir only.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { mountPointsUnder } from '../../host/mounts.js';
import { SandboxError } from '../../errors/errors.js';

/** The 9p mount tag of the export; in the guest it is mounted at GUEST_VOLUMES. */
export const VOLUMES_TAG = 'volumes';
export const GUEST_VOLUMES = '/run/runbox-volumes';
/** Where every VM's export is: one directory each. */
export const EXPORTS = '/run/runbox-volumes';

/** The host directory QEMU exports for the VM in `vmDir`. */
export function volumesExport(vmDir: string): string {
  return join(EXPORTS, createHash('sha256').update(vmDir).digest('hex').slice(0, 16));
}

export function createVolumesExport(vmDir: string): string {
  const dir = volumesExport(vmDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Where a container's volume number `index` is, under the export (host) and in the guest. */
export function volumePath(containerId: string, index: number): string {
  return `${containerId}/${index}`;
}

/** Bind-mounts `source` at the volume's place in the VM's export, read-only if asked. */
export function bindVolume(vmDir: string, containerId: string, index: number, source: string, readonly: boolean): void {
  const target = join(volumesExport(vmDir), volumePath(containerId, index));
  mkdirSync(target, { recursive: true, mode: 0o700 });
  const mount = (args: string[]) => {
    const result = spawnSync('mount', args, { encoding: 'utf8' });
    if (result.status !== 0) throw new SandboxError(`mount ${args.join(' ')}: ${(result.stderr || result.error?.message || '').trim()}`, { containerId });
  };
  mount(['--bind', source, target]);
  // A bind mount takes its read-only flag only from a remount.
  if (readonly) mount(['-o', 'remount,bind,ro', target]);
}

/** Removes empty directories from the bottom up; anything else (a mount still busy, a file) stays. */
function removeEmptyDirs(dir: string): void {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const entry of entries) removeEmptyDirs(join(dir, entry));
  try {
    rmdirSync(dir);
  } catch {
    // not empty, or gone
  }
}

/** Unmounts a container's volumes (every container's, without an id) from the VM's export and removes their places. */
export function unbindVolumes(vmDir: string, containerId?: string): void {
  const root = containerId ? join(volumesExport(vmDir), containerId) : volumesExport(vmDir);
  for (const point of mountPointsUnder(root)) spawnSync('umount', ['-l', point], { stdio: 'ignore' });
  removeEmptyDirs(root);
}
