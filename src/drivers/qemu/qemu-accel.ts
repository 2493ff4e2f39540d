// Which acceleration a microVM gets. KVM is the norm on real hosts, but an open /dev/kvm does not prove a stock
// guest kernel runs on it (nested virtualization through PVM cannot): `auto` trusts KVM only once a guest has
// booted on it on this host, and remembers the answer until the host reboots (the file lives on /run).
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../../host/atomic-file.js';
import { SandboxError } from '../../errors/errors.js';

export type Accel = 'kvm' | 'tcg';
export const ACCEL_CHOICES = ['kvm', 'tcg', 'auto'] as const;
export type AccelChoice = (typeof ACCEL_CHOICES)[number];

/** The config.json annotation that picks the acceleration for one container (else RUNBOX_QEMU_ACCEL, else auto). */
export const ACCEL_ANNOTATION = 'io.runbox.qemu.accel';

export const KVM_DEVICE = process.env.RUNBOX_QEMU_KVM_DEVICE ?? '/dev/kvm';
export const KVM_VERDICT_FILE = process.env.RUNBOX_QEMU_KVM_VERDICT ?? '/run/runbox-qemu/kvm-verdict.json';
/**
 * How long a guest on a KVM not proven yet has to greet before `auto` settles for TCG, unless
 * RUNBOX_QEMU_KVM_PROBE_TIMEOUT says otherwise. A guest greets in well under a second on KVM; where KVM cannot run
 * it, it hangs (a QEMU that aborts is seen at once).
 */
const DEFAULT_KVM_PROBE_TIMEOUT_S = 5;

export function kvmProbeTimeoutSeconds(): number {
  const raw = process.env.RUNBOX_QEMU_KVM_PROBE_TIMEOUT;
  if (raw === undefined) return DEFAULT_KVM_PROBE_TIMEOUT_S;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new SandboxError(`invalid RUNBOX_QEMU_KVM_PROBE_TIMEOUT "${raw}" (expected seconds > 0)`);
  return seconds;
}

interface Verdict {
  works: boolean;
  /** The host kernel the verdict was reached on: another one (a reboot into it) asks again. */
  hostKernel: string;
  /** Why KVM was found not to work: the failed start in QEMU's or the guest's words. */
  why?: string;
}

export function parseAccelChoice(value: string | undefined): AccelChoice {
  const choice = (value ?? 'auto').trim();
  if (!(ACCEL_CHOICES as readonly string[]).includes(choice)) {
    throw new SandboxError(`invalid qemu acceleration "${choice}" (expected one of ${ACCEL_CHOICES.join(', ')})`);
  }
  return choice as AccelChoice;
}

export function kvmDeviceUsable(): boolean {
  try {
    accessSync(KVM_DEVICE, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function readVerdict(): Verdict | undefined {
  try {
    const verdict = JSON.parse(readFileSync(KVM_VERDICT_FILE, 'utf8')) as Verdict;
    return verdict.hostKernel === release() && typeof verdict.works === 'boolean' ? verdict : undefined;
  } catch {
    return undefined;
  }
}

/** What this host taught us about KVM: true (a guest booted on it), false (one failed to), undefined (never tried). */
export function kvmVerdict(): boolean | undefined {
  return readVerdict()?.works;
}

export function recordKvmVerdict(works: boolean, why?: string): void {
  mkdirSync(dirname(KVM_VERDICT_FILE), { recursive: true, mode: 0o700 });
  const verdict: Verdict = { works, hostKernel: release(), ...(why !== undefined && { why }) };
  writeFileAtomic(KVM_VERDICT_FILE, JSON.stringify(verdict), 0o600);
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

/**
 * The acceleration the microVMs of this host get when no annotation picks one (`kvm-or-tcg`: the first VM finds
 * out), and why, for an operator before anything runs.
 */
export function accelOutlook(setting = process.env.RUNBOX_QEMU_ACCEL): { accel: Accel | 'kvm-or-tcg' | 'none'; why: string } {
  let choice: AccelChoice;
  let probeSeconds: number;
  try {
    choice = parseAccelChoice(setting);
  } catch (error) {
    return { accel: 'none', why: `RUNBOX_QEMU_ACCEL: ${(error as Error).message}` };
  }
  try {
    probeSeconds = kvmProbeTimeoutSeconds();
  } catch (error) {
    return { accel: 'none', why: (error as Error).message };
  }
  const overrides = `a container's ${ACCEL_ANNOTATION} annotation overrides it`;
  if (choice !== 'auto') return { accel: choice, why: `RUNBOX_QEMU_ACCEL=${choice}; ${overrides}` };
  const kept = `kept in ${KVM_VERDICT_FILE} until the host reboots`;
  const auto = `auto (RUNBOX_QEMU_ACCEL or a container's ${ACCEL_ANNOTATION} annotation can pick kvm or tcg)`;
  if (!kvmDeviceUsable()) return { accel: 'tcg', why: `${auto}: ${KVM_DEVICE} is absent or cannot be opened read-write` };
  const verdict = readVerdict();
  if (verdict?.works) return { accel: 'kvm', why: `${auto}: a guest has booted on KVM on this host (${kept})` };
  if (verdict) {
    return { accel: 'tcg', why: `${auto}: KVM was tried on this host and could not run a guest (${kept}): ${verdict.why ?? 'no reason recorded'}` };
  }
  return {
    accel: 'kvm-or-tcg',
    why: `${auto}: ${KVM_DEVICE} opens but no guest has booted on it yet: the first microVM tries KVM, and runs on TCG if ` +
      `QEMU fails or its guest has not greeted within ${probeSeconds} s; the answer is ${kept}`,
  };
}
