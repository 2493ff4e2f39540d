// dist/mount.node (native/addon/mount.c): mount(2), which Node does not offer, for mounts on a create's path where
// running mount(8) would cost a fork of this process and the tool's start.
import { projectPath } from './install-paths.js';

export interface MountAddon {
  /** mount(2); throws an Error whose `code` is the errno's name (EINVAL, ENOENT, …). */
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
}

export const MOUNT_ADDON = projectPath('dist', 'mount.node');

let loaded: MountAddon | undefined;

export function mountAddon(): MountAddon {
  if (!loaded) {
    const module = { exports: {} as MountAddon };
    process.dlopen(module, MOUNT_ADDON);
    loaded = module.exports;
  }
  return loaded;
}
