// What a microVM boots: the guest kernel fetched at set-up time (scripts/guest/fetch-kernel.sh), the initramfs
// built at build time with the agent as /init (scripts/guest/build-initramfs.sh), and the kernel parameters.
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../../host/atomic-file.js';
import { projectPath } from '../../host/install-paths.js';
import type { VmResources } from './qemu-resources.js';
import { SandboxError } from '../../errors/errors.js';

/** What a VM boots, or was booted from when it is a clone. */
export interface Guest {
  kernel: string;
  initrd: string;
  cmdline: string[];
  resources: VmResources;
  /** A pod's: a NIC on a tap (its network) and a 9p export (its volumes); a template's device layout, so part of its key. */
  pod: boolean;
}

export interface GuestAssets {
  /** Absolute path of the uncompressed vmlinux (PVH entry) to boot. */
  kernel: string;
  /** Absolute path of the initramfs: /init = the runbox agent (static), + kernel modules. */
  initrd: string;
  /** What `uname -r` in the guest prints, e.g. 6.1.0-56-cloud-amd64. */
  kernelVersion: string;
  /** Kernel parameters for a fast, reliable boot. */
  cmdline: string[];
}

export const GUEST_DIR = projectPath('build', 'guest');

/** Throws an Error naming what is missing and the command that makes it when the assets are absent. */
export function guestAssets(dir = GUEST_DIR): GuestAssets {
  const kernel = join(dir, 'vmlinux');
  const initrd = join(dir, 'initrd.img');
  const versionFile = join(dir, 'kernel-version');
  if (!existsSync(kernel) || !existsSync(versionFile)) {
    throw new SandboxError(`the microVM guest kernel is missing (${kernel}): run \`npm run setup\` (scripts/guest/fetch-kernel.sh)`);
  }
  if (!existsSync(initrd)) {
    throw new SandboxError(`the microVM initramfs is missing (${initrd}): run \`npm run build\` (scripts/guest/build-initramfs.sh)`);
  }
  const kernelVersion = readFileSync(versionFile, 'utf8').trim();
  const hz = Number(readFileSync(join(dir, 'kernel-hz'), 'utf8').trim());
  return { kernel, initrd, kernelVersion, cmdline: kernelCmdline(hostTscKhz(), hz) };
}

/**
 * Under TCG the guest's TSC ticks at the host's rate, and microvm has no HPET or PM timer to calibrate it
 * against: without tsc_early_khz about one boot in ten hangs. lpj (from the same rate) skips the delay-loop
 * calibration.
 */
export function kernelCmdline(tscKhz: number, hz: number): string[] {
  return [
    'console=ttyS0', '8250.nr_uarts=1', 'quiet',
    // a panic or a reboot ends QEMU (run with -no-reboot) instead of leaving a dead VM behind
    'panic=-1', 'reboot=t',
    `tsc_early_khz=${tscKhz}`, `lpj=${Math.round((tscKhz * 1000) / hz)}`, 'no_timer_check',
    'pci=off', 'i8042.noaux', 'i8042.nomux', 'i8042.nopnp', 'i8042.dumbkbd',
    'cryptomgr.notests', 'random.trust_cpu=on', 'nokaslr',
    // one sandbox per VM: the VM is the isolation boundary, not the guest kernel's; so too for zeroing every
    // allocation (the Debian kernel's default), which under TCG costs ~20 ms of a container's start
    'mitigations=off', 'init_on_alloc=0',
    // nothing in the guest reads debugfs, whose files each port, disk and module would otherwise make (~15 ms)
    'debugfs=off',
  ];
}

/**
 * Where the host's TSC frequency is kept once read, for this boot of the host: reading it from the kernel log
 * costs every `runbox create` ~10 ms before its VM can start.
 */
export const HOST_TSC_FILE = '/run/runbox-qemu/host-tsc.json';

/**
 * The host's TSC frequency in kHz: what the kernel measured at boot, else what /proc/cpuinfo says; kept in
 * keptIn for the next call until the host reboots.
 */
export function hostTscKhz(keptIn = HOST_TSC_FILE): number {
  return keptTscKhz(keptIn) ?? keepTscKhz(keptIn, tscKhzFromKernelLog() ?? tscKhzFromCpuinfo());
}

function hostBootId(): string {
  return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
}

function keptTscKhz(file: string): number | undefined {
  try {
    const kept = JSON.parse(readFileSync(file, 'utf8')) as { khz: number; bootId: string };
    return kept.bootId === hostBootId() && Number.isInteger(kept.khz) && kept.khz > 0 ? kept.khz : undefined;
  } catch {
    return undefined;
  }
}

function keepTscKhz(file: string, khz: number): number {
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileAtomic(file, JSON.stringify({ khz, bootId: hostBootId() }), 0o600, false);
  } catch {
    // not root: read it again next time
  }
  return khz;
}

function tscKhzFromKernelLog(): number | undefined {
  let fd: number;
  try {
    fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined; // not root, or no /dev/kmsg
  }
  let detected: number | undefined;
  let refined: number | undefined;
  const record = Buffer.alloc(8192);
  try {
    for (;;) {
      const text = record.toString('latin1', 0, readSync(fd, record));
      const match = /tsc: (Detected|Refined TSC clocksource calibration:) ([0-9.]+) MHz/.exec(text);
      if (match?.[1] === 'Detected') detected = mhzToKhz(match[2]!);
      else if (match) refined = mhzToKhz(match[2]!);
    }
  } catch {
    // EAGAIN: the end of the log (or EPIPE, records overwritten while reading: what was read stands)
  } finally {
    closeSync(fd);
  }
  return refined ?? detected;
}

function tscKhzFromCpuinfo(): number {
  const match = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  if (!match) throw new SandboxError('cannot tell the host TSC frequency: no "cpu MHz" in /proc/cpuinfo');
  return mhzToKhz(match[1]!);
}

function mhzToKhz(mhz: string): number {
  return Math.round(Number(mhz) * 1000);
}
