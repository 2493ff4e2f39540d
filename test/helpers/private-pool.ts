// Each test file's runbox calls (and the shims of its containerds) use a warm pool of their own, ended with the
// file's process: no pooled process outlives the tests, nor serves another file's calls (docs/warm-pool.md).
import { mkdtempSync, rmSync } from 'node:fs';
import { sweepReserves } from '../../src/drivers/qemu/vm-reserve.js';
import { isProcessAlive } from '../../src/host/host-process.js';
import { poolMembers } from '../../src/host/warm-pool.js';

/**
 * Kills every member of the pool at dir and removes it, with what the VM members' waiting VMs left (their QEMUs die
 * with them); a member still starting finds the pool gone and exits.
 */
export function endPool(dir: string): void {
  const members = poolMembers(dir).filter((member) => member.alive);
  for (const member of members) {
    try {
      process.kill(member.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (const end = Date.now() + 2000; members.some((m) => isProcessAlive(m.pid, m.startTime)) && Date.now() < end;) Atomics.wait(pause, 0, 0, 10);
  sweepReserves(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** A fresh pool directory, ended at teardown. */
export function privatePool(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync('/tmp/rbx-pool-');
  t.teardown(() => endPool(dir));
  return dir;
}

if (!process.env.RUNBOX_POOL_DIR) {
  const dir = mkdtempSync('/tmp/rbx-pool-');
  process.env.RUNBOX_POOL_DIR = dir;
  // Should this process die before its exit handler runs, what it leaves ends after a minute.
  process.env.RUNBOX_POOL_IDLE_SECONDS ??= '60';
  process.once('exit', () => endPool(dir));
}
