// Each test file's runbox calls (and the shims of its containerds) use a warm pool of their own, ended with the
// file's process: no pooled process outlives the tests, nor serves another file's calls (docs/warm-pool.md).
import { mkdtempSync, rmSync } from 'node:fs';
import { poolMembers } from '../../src/host/warm-pool.js';

/** Kills every member of the pool at dir and removes it; a member still starting finds it gone and exits. */
export function endPool(dir: string): void {
  for (const member of poolMembers(dir)) {
    try {
      if (member.alive) process.kill(member.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
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
