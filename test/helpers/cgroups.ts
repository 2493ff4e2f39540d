// Reading a process's cgroups from the host, as a user checks what a runtime did: /proc/PID/cgroup names the
// cgroup, the files under /sys/fs/cgroup hold its limits (v1: one hierarchy per controller; v2: one tree).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostCgroupMode } from '../../src/agent-client/cgroup-records.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
export const UNIFIED = hostCgroupMode() === 'v2';

/** The host directory of a process's cgroup for a controller (v2: the one directory). */
export function cgroupDir(pid: number, controller: string): string {
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const [, controllers, path] = line.split(':');
    if (UNIFIED ? controllers === '' : controllers!.split(',').includes(controller)) {
      return join(CGROUP_ROOT, UNIFIED ? '' : controller, path!);
    }
  }
  throw new Error(`process ${pid} has no ${controller} cgroup`);
}

/** The relative path of this process's own cgroup for a controller. */
export function ownCgroup(controller: string): string {
  const dir = cgroupDir(process.pid, controller);
  return dir.slice(join(CGROUP_ROOT, UNIFIED ? '' : controller).length);
}

export function cgroupValue(pid: number, controller: string, file: string): string {
  return readFileSync(join(cgroupDir(pid, controller), file), 'utf8').trim();
}

/** The memory limit of a process's cgroup in bytes ('max' where there is none, on v2). */
export function memoryLimit(pid: number): string {
  return cgroupValue(pid, 'memory', UNIFIED ? 'memory.max' : 'memory.limit_in_bytes');
}

/** Every hierarchy (v1) or the tree (v2) in which `relative` (e.g. "/runbox-test-x") still exists. */
export function cgroupsLeft(relative: string): string[] {
  const roots = UNIFIED ? [CGROUP_ROOT] : readdirSync(CGROUP_ROOT).map((name) => join(CGROUP_ROOT, name));
  return roots.map((root) => join(root, relative)).filter((dir) => existsSync(dir));
}
