// One KVM probe at a time on a host: the first microVM under `auto` on a host with no verdict yet tries KVM holding
// a lock beside the verdict file, and a VM that starts meanwhile waits for that verdict rather than probing too.
// The lock is flock(2)'s: a prober killed mid-probe leaves it to the next VM.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { FileLock } from '../../host/file-lock.js';
import { KVM_VERDICT_FILE, kvmVerdict, recordKvmVerdict, type Accel } from './qemu-accel.js';

export class KvmProbe {
  private constructor(private lock: FileLock | undefined) {}

  /** The probe this caller is to make; or, once another caller's probe has settled, the acceleration it found. */
  static async claim(): Promise<KvmProbe | Accel> {
    mkdirSync(dirname(KVM_VERDICT_FILE), { recursive: true, mode: 0o700 });
    const lock = await FileLock.acquire(`${KVM_VERDICT_FILE}.lock`);
    const verdict = kvmVerdict();
    if (verdict === undefined) return new KvmProbe(lock);
    lock.release();
    return verdict ? 'kvm' : 'tcg';
  }

  /** Records whether a guest booted on KVM, and lets the VMs waiting for the verdict go on. */
  settle(works: boolean, why?: string): void {
    if (!this.lock) return;
    recordKvmVerdict(works, why);
    this.release();
  }

  /** Ends the probe; unsettled (it failed for a reason that says nothing of KVM), the next VM probes again. */
  release(): void {
    this.lock?.release();
    this.lock = undefined;
  }
}
