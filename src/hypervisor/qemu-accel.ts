// Which acceleration a microVM gets. KVM is the norm on real hosts, but an open /dev/kvm does not prove a stock
// guest kernel runs on it (nested virtualization through PVM cannot): `auto` trusts KVM only once a guest has
// booted on it on this host, and remembers the answer until the host reboots (the file lives on /run).
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../runtime/atomic-file.js';

export type Accel = 'kvm' | 'tcg';
export const ACCEL_CHOICES = ['kvm', 'tcg', 'auto'] as const;
export type AccelChoice = (typeof ACCEL_CHOICES)[number];

/** The config.json annotation that picks the acceleration for one container (else RUNBOX_QEMU_ACCEL, else auto). */
export const ACCEL_ANNOTATION = 'io.runbox.qemu.accel';

const VERDICT_FILE = process.env.RUNBOX_QEMU_KVM_VERDICT ?? '/run/runbox-qemu/kvm-verdict.json';

interface Verdict {
  works: boolean;
  /** The host kernel the verdict was reached on: another one (a reboot into it) asks again. */
  hostKernel: string;
}

export function parseAccelChoice(value: string | undefined): AccelChoice {
  const choice = (value ?? 'auto').trim();
  if (!(ACCEL_CHOICES as readonly string[]).includes(choice)) {
    throw new Error(`invalid qemu acceleration "${choice}" (expected one of ${ACCEL_CHOICES.join(', ')})`);
  }
  return choice as AccelChoice;
}

export function kvmDeviceUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** What this host taught us about KVM: true (a guest booted on it), false (one failed to), undefined (never tried). */
export function kvmVerdict(): boolean | undefined {
  try {
    const verdict = JSON.parse(readFileSync(VERDICT_FILE, 'utf8')) as Verdict;
    return verdict.hostKernel === release() ? verdict.works : undefined;
  } catch {
    return undefined;
  }
}

export function recordKvmVerdict(works: boolean): void {
  mkdirSync(dirname(VERDICT_FILE), { recursive: true, mode: 0o700 });
  writeFileAtomic(VERDICT_FILE, JSON.stringify({ works, hostKernel: release() } satisfies Verdict), 0o600);
}

/** KVM has been seen to boot a guest here. */
export function kvmProven(): boolean {
  return kvmVerdict() === true && kvmDeviceUsable();
}

/**
 * The plan for one boot: the acceleration to try first, and whether its outcome is a probe to remember (auto
 * with no verdict yet: try KVM, fall back to TCG).
 */
export function planAccel(choice: AccelChoice): { accel: Accel; probe: boolean } {
  if (choice !== 'auto') return { accel: choice, probe: false };
  if (!kvmDeviceUsable()) return { accel: 'tcg', probe: false };
  const verdict = kvmVerdict();
  if (verdict === undefined) return { accel: 'kvm', probe: true };
  return { accel: verdict ? 'kvm' : 'tcg', probe: false };
}
