// dist/mount.node (native/addon/mount.c): mount(2), which Node does not offer, for mounts on a create's path where
// running mount(8) would cost a fork of this process and the tool's start.
import { nativeAddon } from './native-addon.js';

export interface MountAddon {
  /** mount(2); throws an Error whose `code` is the errno's name (EINVAL, ENOENT, …). */
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
}

export function mountAddon(): MountAddon {
  return nativeAddon<MountAddon>('mount.node');
}
