// The floor of a microVM: QEMU booting the guest kernel (same kernel, same parameters) into an initramfs whose
// /init (scripts/guest/floor-init.c) says it is up on the console and powers the VM off at once. Nothing runbox
// does can be faster than this; bench/vm.ts compares runbox against it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootToPowerOff, buildInitramfs, compileStaticInit } from '../src/hypervisor/guest-bare-boot.js';
import { median } from './stats.js';

export interface VmFloor {
  rounds: number;
  /** Median, from spawning QEMU to the init's line on the console. */
  upMs: number;
  /** Median, from spawning QEMU to its exit after the guest powered off. */
  exitMs: number;
  /** Median resident memory of QEMU when the init was up. */
  qemuRssMib: number;
}


/** Boots the floor VM ROUNDS times, one at a time. */
export async function vmFloor(rounds: number): Promise<VmFloor> {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-vm-floor-'));
  try {
    const init = join(dir, 'init');
    const initrd = join(dir, 'initrd.img');
    await compileStaticInit(['scripts/guest/floor-init.c'], init);
    await buildInitramfs(init, initrd);
    const up: number[] = [];
    const exit: number[] = [];
    const rss: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const boot = await bootToPowerOff({ initrd, marker: 'floor: up' });
      if (boot.markerMs === undefined) throw new Error(`the floor VM never said it was up:\n${boot.console}`);
      up.push(boot.markerMs);
      exit.push(boot.exitMs);
      if (boot.qemuRssKib !== undefined) rss.push(boot.qemuRssKib / 1024);
    }
    return { rounds, upMs: median(up), exitMs: median(exit), qemuRssMib: median(rss) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The median time from spawning QEMU to its exit, for bench/vm.ts. */
export async function vmFloorMs(rounds: number): Promise<number> {
  return (await vmFloor(rounds)).exitMs;
}
