// A container's first cgroup migration waits for an RCU grace period, some 5-15 ms: the kernel takes
// cgroup_threadgroup_rwsem for writing only after one, unless another migration ended moments before. Moving this
// process into the cgroup it is already in, on libuv's thread pool, pays that wait while the sandbox agent starts
// and the create is prepared, so that the agent's migration of the container finds it passed.
import { readFile, writeFile } from 'node:fs';

const MOUNTS = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'];

/** Starts the move of this process into its own cgroup v2 cgroup (the unified hierarchy, hybrid or not); as root only. */
export function primeCgroupMigration(): void {
  if (process.geteuid?.() !== 0) return;
  // Callbacks, not fs/promises: loading that module would cost a shim more than the move saves.
  readFile('/proc/self/cgroup', 'utf8', (error, text) => {
    // v2's line is "0::PATH"; a host with v1 hierarchies only has none, and is left alone.
    const own = error ? undefined : /^0::(.*)$/m.exec(text)?.[1];
    if (own === undefined) return;
    const tryMount = (i: number): void => {
      if (i < MOUNTS.length) writeFile(`${MOUNTS[i]}${own === '/' ? '' : own}/cgroup.procs`, '0', (failed) => failed && tryMount(i + 1));
    };
    tryMount(0);
  });
}
