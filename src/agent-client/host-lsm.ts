// Which Linux security modules the host enforces (runc's apparmor.IsEnabled and go-selinux's GetEnabled), so
// that a config.json asking for a profile or a label is applied where the host has them and refused elsewhere.
import { readFileSync, statfsSync } from 'node:fs';
import type { LsmSupport } from './lsm-records.js';

const SELINUX_MAGIC = 0xf97cff8c;

function appArmorEnabled(): boolean {
  try {
    return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').startsWith('Y');
  } catch {
    return false;
  }
}

function selinuxEnabled(): boolean {
  try {
    return statfsSync('/sys/fs/selinux').type === SELINUX_MAGIC;
  } catch {
    return false;
  }
}

export function hostLsm(): LsmSupport {
  return {
    appArmor: appArmorEnabled() || 'AppArmor is not enabled on this host',
    selinux: selinuxEnabled() || 'SELinux is not enabled on this host',
  };
}
