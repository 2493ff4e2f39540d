// The floor of a microVM: QEMU booting the guest kernel (same kernel, same parameters) into an initramfs whose
// /init (native/probes/floor-init.c) says it is up on the console and powers the VM off at once. Nothing runbox
// does can be faster than this; bench/vm.ts compares runbox against it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootToPowerOff, buildInitramfs, compileStaticInit } from './guest-bare-boot.js';

/** The floor VM, built once: each boot is QEMU alone, with no compiler or archiver run just before it. */
export interface VmFloor {
  /** Boots it once: the time from spawning QEMU to its exit after the guest powered off. */
  bootMs(): Promise<number>;
  /** Removes its init and initramfs. */
  dispose(): void;
}

export async function prepareVmFloor(): Promise<VmFloor> {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-vm-floor-'));
  const initrd = join(dir, 'initrd.img');
  try {
    const init = join(dir, 'init');
    await compileStaticInit(['native/probes/floor-init.c'], init);
    await buildInitramfs(init, initrd);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    async bootMs() {
      const boot = await bootToPowerOff({ initrd, marker: 'floor: up' });
      if (boot.markerMs === undefined) throw new Error(`the floor VM never said it was up:\n${boot.console}`);
      return boot.exitMs;
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
