// config.json's linux.cgroupsPath and linux.resources as agent records (PROTOCOL.md, `cgroup_path` and
// `cgroup_set`): each resource resolved to the file and value the kernel takes, for cgroup v1 or v2, as runc's
// cgroupfs managers write them, so that the agent only creates directories and writes files.
import { statfsSync } from 'node:fs';
import { posix } from 'node:path';
import type { LinuxResources } from '../oci/linux-resources.js';
import { SpecError } from '../oci/load-spec.js';
import { UNIT_SEPARATOR as US, type RecordList } from './agent-records.js';

export type CgroupMode = 'v1' | 'v2';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const TMPFS_MAGIC = 0x01021994;

/** v2 where /sys/fs/cgroup is cgroup2 (unified), v1 where it holds v1 hierarchies, undefined without cgroups. */
export function hostCgroupMode(): CgroupMode | undefined {
  try {
    const type = statfsSync('/sys/fs/cgroup').type;
    if (type === CGROUP2_SUPER_MAGIC) return 'v2';
    return type === TMPFS_MAGIC ? 'v1' : undefined;
  } catch {
    return undefined;
  }
}

/** runc's CleanPath: no `..` can climb out; a relative path stays relative (to the runtime's own cgroup). */
export function cleanCgroupsPath(path: string): string {
  if (path === '') return '';
  const clean = posix.normalize(`/${path}`);
  return posix.isAbsolute(path) ? clean : clean.slice(1) || '.';
}

export function cgroupPathRecords(cgroupsPath: string | undefined): RecordList {
  const clean = cleanCgroupsPath(cgroupsPath ?? '');
  return clean ? [['cgroup_path', clean]] : [];
}

const set = (controller: string, file: string, value: string | number): [string, string] =>
  ['cgroup_set', [controller, file, String(value)].join(US)];

const given = (value: number | undefined | null): value is number => typeof value === 'number';

/** Beyond 2^53 a JSON number has lost its digits; such limits mean "no limit" in practice. */
function bytes(value: number, unlimited: string): string {
  return value < 0 || value >= Number.MAX_SAFE_INTEGER ? unlimited : String(value);
}

function v1Records(resources: LinuxResources): RecordList {
  const records: RecordList = [];
  const { memory, cpu, pids } = resources;
  if (given(memory?.limit)) records.push(set('memory', 'memory.limit_in_bytes', bytes(memory.limit, '-1')));
  if (given(memory?.swap)) records.push(set('memory', 'memory.memsw.limit_in_bytes', bytes(memory.swap, '-1')));
  if (given(memory?.reservation)) records.push(set('memory', 'memory.soft_limit_in_bytes', bytes(memory.reservation, '-1')));
  if (given(memory?.swappiness)) records.push(set('memory', 'memory.swappiness', memory.swappiness));
  if (memory?.disableOOMKiller) records.push(set('memory', 'memory.oom_control', 1));
  if (given(cpu?.shares) && cpu.shares !== 0) records.push(set('cpu', 'cpu.shares', cpu.shares));
  if (given(cpu?.period) && cpu.period !== 0) records.push(set('cpu', 'cpu.cfs_period_us', cpu.period));
  if (given(cpu?.quota) && cpu.quota !== 0) records.push(set('cpu', 'cpu.cfs_quota_us', cpu.quota));
  if (given(cpu?.realtimePeriod) && cpu.realtimePeriod !== 0) records.push(set('cpu', 'cpu.rt_period_us', cpu.realtimePeriod));
  if (given(cpu?.realtimeRuntime) && cpu.realtimeRuntime !== 0) records.push(set('cpu', 'cpu.rt_runtime_us', cpu.realtimeRuntime));
  if (cpu?.cpus) records.push(set('cpuset', 'cpuset.cpus', cpu.cpus));
  if (cpu?.mems) records.push(set('cpuset', 'cpuset.mems', cpu.mems));
  if (given(pids?.limit) && pids.limit !== 0) records.push(set('pids', 'pids.max', pids.limit < 0 ? 'max' : pids.limit));
  return records;
}

function v2Records(resources: LinuxResources): RecordList {
  const records: RecordList = [];
  const { memory, cpu, pids } = resources;
  if (given(memory?.limit)) records.push(set('memory', 'memory.max', bytes(memory.limit, 'max')));
  if (given(memory?.swap)) {
    // v1's swap counts memory+swap; v2's swap.max counts swap alone (runc's ConvertMemorySwapToCgroupV2Value).
    if (memory.swap < 0) records.push(set('memory', 'memory.swap.max', 'max'));
    else if (!given(memory.limit) || memory.limit < 0) throw new SpecError('linux.resources.memory.swap needs memory.limit on cgroup v2');
    else if (memory.swap < memory.limit) throw new SpecError('linux.resources.memory.swap must not be less than memory.limit');
    else records.push(set('memory', 'memory.swap.max', memory.swap - memory.limit));
  }
  if (given(memory?.reservation)) records.push(set('memory', 'memory.low', bytes(memory.reservation, 'max')));
  if (given(cpu?.shares) && cpu.shares !== 0) records.push(set('cpu', 'cpu.weight', 1 + Math.floor(((cpu.shares - 2) * 9999) / 262142)));
  if ((given(cpu?.quota) && cpu.quota !== 0) || (given(cpu?.period) && cpu.period !== 0)) {
    const quota = given(cpu?.quota) && cpu.quota > 0 ? String(cpu.quota) : 'max';
    records.push(set('cpu', 'cpu.max', `${quota} ${given(cpu?.period) && cpu.period > 0 ? cpu.period : 100_000}`));
  }
  if (cpu?.cpus) records.push(set('cpuset', 'cpuset.cpus', cpu.cpus));
  if (cpu?.mems) records.push(set('cpuset', 'cpuset.mems', cpu.mems));
  if (given(pids?.limit) && pids.limit !== 0) records.push(set('pids', 'pids.max', pids.limit < 0 ? 'max' : pids.limit));
  return records;
}

/** The `cgroup_set` records for resources (already validated: validateResources). */
export function cgroupResourceRecords(resources: LinuxResources | undefined, mode: CgroupMode): RecordList {
  if (!resources) return [];
  return mode === 'v2' ? v2Records(resources) : v1Records(resources);
}
