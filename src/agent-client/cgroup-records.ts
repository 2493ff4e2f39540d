// config.json's linux.cgroupsPath and linux.resources as agent records (PROTOCOL.md, `cgroup_path` and
// `cgroup_set`): each resource resolved to the file and value the kernel takes, for cgroup v1 or v2, as runc's
// cgroupfs managers write them, so that the agent only creates directories and writes files.
import { statfsSync } from 'node:fs';
import { posix } from 'node:path';
import type { LinuxBlockIO, LinuxDeviceRule, LinuxResources } from '../oci/linux-resources.js';
import { SandboxError, SpecError } from '../errors/errors.js';
import { UNIT_SEPARATOR as US, type RecordList } from './agent-records.js';
import { reduceDeviceRules, type DeviceException } from './device-cgroup-rules.js';

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

/** One `cgroup_set` record; setting: config.json's name for it (linux.resources.…), for the agent's messages. */
const set = (controller: string, file: string, value: string | number, setting: string): [string, string] =>
  ['cgroup_set', [controller, file, String(value), `linux.resources.${setting}`].join(US)];

const given = (value: number | undefined | null): value is number => typeof value === 'number';
/** runc's reading of a memory value: 0 (or absent) leaves the kernel's default. */
const nonzero = (value: number | undefined | null): value is number => given(value) && value !== 0;

const device = (d: { major: number; minor: number }) => `${d.major}:${d.minor}`;

/** blockIO's per-device throttles, as `MAJ:MIN RATE` lines (v1) or io.max keys (v2). */
const THROTTLES: Array<[keyof LinuxBlockIO, string, string]> = [
  ['throttleReadBpsDevice', 'blkio.throttle.read_bps_device', 'rbps'],
  ['throttleWriteBpsDevice', 'blkio.throttle.write_bps_device', 'wbps'],
  ['throttleReadIOPSDevice', 'blkio.throttle.read_iops_device', 'riops'],
  ['throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device', 'wiops'],
];

/**
 * The device cgroup rules a container gets whatever config.json says (runc's AllowedDevices): mknod of any node,
 * and the default devices every container has (config-linux.md "Default Devices"), the pty ones and /dev/net/tun.
 */
const ALWAYS_ALLOWED: LinuxDeviceRule[] = [
  { allow: true, type: 'c', access: 'm' }, { allow: true, type: 'b', access: 'm' },
  ...[[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 1], [5, 2], [10, 200]].map(([major, minor]) => ({ allow: true, type: 'c', major, minor, access: 'rwm' })),
  { allow: true, type: 'c', major: 136, access: 'rwm' },
];

function deviceRule(rule: LinuxDeviceRule): string {
  const number = (n: number | undefined) => (n === undefined || n === null || n < 0 ? '*' : String(n));
  const type = rule.type ?? 'a';
  return type === 'a' ? 'a' : `${type} ${number(rule.major)}:${number(rule.minor)} ${rule.access || 'rwm'}`;
}

/**
 * The device rules for the v1 devices controller, which reduces them itself: from a cgroup that denies every
 * device (runc's starting point, whatever the parent allows), each rule in the listed order (runtime-spec: the
 * runtime MUST apply them so; devices.list keeps that order). What runc's devices emulator refuses (a hole punched
 * in a wildcard rule, which the kernel would silently ignore) is refused first.
 */
function v1DeviceRecords(rules: LinuxDeviceRule[]): RecordList {
  const all = [...rules, ...ALWAYS_ALLOWED];
  reduceDeviceRules(all);
  const denyAll: LinuxDeviceRule = { allow: false };
  return [denyAll, ...all].map((rule) => set('devices', rule.allow ? 'devices.allow' : 'devices.deny', deviceRule(rule), 'devices'));
}

/**
 * The device rules for the agent's eBPF device program (PROTOCOL.md, `cgroup_device_default`, `cgroup_device`),
 * attached to the container's cgroup2 directory: cgroup v2's, or on a v1 host the one the agent makes in the
 * cgroup2 mount `cgroup2Mount` (`cgroup_unified_mount`).
 */
function ebpfDeviceRecords(rules: LinuxDeviceRule[], cgroup2Mount?: string): RecordList {
  const { defaultAllow, exceptions } = reduceDeviceRules([...rules, ...ALWAYS_ALLOWED]);
  const exception = (e: DeviceException) => [e.type, e.major, e.minor, e.access].join(US);
  return [
    ...(cgroup2Mount ? [['cgroup_unified_mount', cgroup2Mount] as [string, string]] : []),
    ['cgroup_device_default', defaultAllow ? 'allow' : 'deny'],
    ...exceptions.map((e): [string, string] => ['cgroup_device', exception(e)]),
  ];
}

/** The variable that names a cgroup2 mount for the device rules of a host whose controllers are v1 (hybrid). */
export const CGROUP2_DEVICES_VARIABLE = 'RUNBOX_CGROUP2_DEVICES';

/**
 * On a v1 host, the cgroup2 mount RUNBOX_CGROUP2_DEVICES names (a hybrid host's /sys/fs/cgroup/unified, as
 * systemd's hybrid mode mounts it), whose device program then applies the device rules instead of the v1 devices
 * controller runc uses there; undefined when unset (or on a v2 host, where the program is the only way). A value
 * that is not a cgroup2 mount is an error.
 */
export function devicesCgroup2(mode: CgroupMode | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const path = env[CGROUP2_DEVICES_VARIABLE];
  if (!path || mode !== 'v1') return undefined;
  let type: number | undefined;
  try {
    type = statfsSync(path).type;
  } catch {
    // Reported below.
  }
  if (!posix.isAbsolute(path) || type !== CGROUP2_SUPER_MAGIC) throw new SandboxError(`${CGROUP2_DEVICES_VARIABLE}=${path} is not a cgroup2 mount`);
  return posix.normalize(path);
}

/** Beyond 2^53 a JSON number has lost its digits; such limits mean "no limit" in practice. */
function bytes(value: number, unlimited: string): string {
  return value < 0 || value >= Number.MAX_SAFE_INTEGER ? unlimited : String(value);
}

function v1Records(resources: LinuxResources, cgroup2Devices?: string): RecordList {
  const records: RecordList = [];
  const { memory, cpu, pids, blockIO, network } = resources;
  if (nonzero(memory?.limit)) records.push(set('memory', 'memory.limit_in_bytes', bytes(memory.limit, '-1'), 'memory.limit'));
  if (nonzero(memory?.swap)) records.push(set('memory', 'memory.memsw.limit_in_bytes', bytes(memory.swap, '-1'), 'memory.swap'));
  if (nonzero(memory?.reservation)) records.push(set('memory', 'memory.soft_limit_in_bytes', bytes(memory.reservation, '-1'), 'memory.reservation'));
  if (given(memory?.swappiness)) records.push(set('memory', 'memory.swappiness', memory.swappiness, 'memory.swappiness'));
  if (memory?.disableOOMKiller) records.push(set('memory', 'memory.oom_control', 1, 'memory.disableOOMKiller'));
  if (nonzero(cpu?.shares)) records.push(set('cpu', 'cpu.shares', cpu.shares, 'cpu.shares'));
  if (nonzero(cpu?.period)) records.push(set('cpu', 'cpu.cfs_period_us', cpu.period, 'cpu.period'));
  if (nonzero(cpu?.quota)) records.push(set('cpu', 'cpu.cfs_quota_us', cpu.quota, 'cpu.quota'));
  if (nonzero(cpu?.realtimePeriod)) records.push(set('cpu', 'cpu.rt_period_us', cpu.realtimePeriod, 'cpu.realtimePeriod'));
  if (nonzero(cpu?.realtimeRuntime)) records.push(set('cpu', 'cpu.rt_runtime_us', cpu.realtimeRuntime, 'cpu.realtimeRuntime'));
  if (cpu?.cpus) records.push(set('cpuset', 'cpuset.cpus', cpu.cpus, 'cpu.cpus'));
  if (cpu?.mems) records.push(set('cpuset', 'cpuset.mems', cpu.mems, 'cpu.mems'));
  if (nonzero(pids?.limit)) records.push(set('pids', 'pids.max', pids.limit < 0 ? 'max' : pids.limit, 'pids.limit'));
  if (nonzero(blockIO?.weight)) records.push(set('blkio', 'blkio.weight', blockIO.weight, 'blockIO.weight'));
  if (nonzero(blockIO?.leafWeight)) records.push(set('blkio', 'blkio.leaf_weight', blockIO.leafWeight, 'blockIO.leafWeight'));
  for (const d of blockIO?.weightDevice ?? []) {
    if (given(d.weight)) records.push(set('blkio', 'blkio.weight_device', `${device(d)} ${d.weight}`, 'blockIO.weightDevice'));
    if (given(d.leafWeight)) records.push(set('blkio', 'blkio.leaf_weight_device', `${device(d)} ${d.leafWeight}`, 'blockIO.weightDevice'));
  }
  for (const [key, file] of THROTTLES) {
    for (const d of (blockIO?.[key] ?? []) as Array<{ major: number; minor: number; rate: number }>) records.push(set('blkio', file, `${device(d)} ${d.rate}`, `blockIO.${key}`));
  }
  for (const { pageSize, limit } of resources.hugepageLimits ?? []) {
    records.push(set('hugetlb', `hugetlb.${pageSize}.limit_in_bytes`, limit, 'hugepageLimits'));
  }
  if (nonzero(network?.classID)) records.push(set('net_cls', 'net_cls.classid', network.classID, 'network.classID'));
  for (const { name, priority } of network?.priorities ?? []) records.push(set('net_prio', 'net_prio.ifpriomap', `${name} ${priority}`, 'network.priorities'));
  records.push(...rdmaRecords(resources));
  if (Object.keys(resources.unified ?? {}).length) throw new SpecError('linux.resources.unified needs cgroup v2: this host\'s cgroups are v1 (runc: cannot use unified on cgroup v1)');
  if (resources.devices) records.push(...(cgroup2Devices ? ebpfDeviceRecords(resources.devices, cgroup2Devices) : v1DeviceRecords(resources.devices)));
  return records;
}

function v2Records(resources: LinuxResources): RecordList {
  const records: RecordList = [];
  const { memory, cpu, pids, blockIO } = resources;
  if (nonzero(memory?.limit)) records.push(set('memory', 'memory.max', bytes(memory.limit, 'max'), 'memory.limit'));
  if (nonzero(memory?.swap)) {
    // v1's swap counts memory+swap; v2's swap.max counts swap alone (runc's ConvertMemorySwapToCgroupV2Value).
    if (memory.swap < 0) records.push(set('memory', 'memory.swap.max', 'max', 'memory.swap'));
    else if (!given(memory.limit) || memory.limit <= 0) throw new SpecError('linux.resources.memory.swap needs memory.limit on cgroup v2');
    else if (memory.swap < memory.limit) throw new SpecError('linux.resources.memory.swap must not be less than memory.limit');
    else records.push(set('memory', 'memory.swap.max', memory.swap - memory.limit, 'memory.swap'));
  }
  if (nonzero(memory?.reservation)) records.push(set('memory', 'memory.low', bytes(memory.reservation, 'max'), 'memory.reservation'));
  if (nonzero(cpu?.shares)) records.push(set('cpu', 'cpu.weight', 1 + Math.floor(((cpu.shares - 2) * 9999) / 262142), 'cpu.shares'));
  if (nonzero(cpu?.quota) || nonzero(cpu?.period)) {
    const quota = given(cpu?.quota) && cpu.quota > 0 ? String(cpu.quota) : 'max';
    records.push(set('cpu', 'cpu.max', `${quota} ${given(cpu?.period) && cpu.period > 0 ? cpu.period : 100_000}`, 'cpu.quota'));
  }
  if (cpu?.cpus) records.push(set('cpuset', 'cpuset.cpus', cpu.cpus, 'cpu.cpus'));
  if (cpu?.mems) records.push(set('cpuset', 'cpuset.mems', cpu.mems, 'cpu.mems'));
  if (nonzero(pids?.limit)) records.push(set('pids', 'pids.max', pids.limit < 0 ? 'max' : pids.limit, 'pids.limit'));
  // runc's ConvertBlkIOToIOWeightValue: blkio's 10-1000 onto io.weight's 1-10000.
  if (nonzero(blockIO?.weight)) records.push(set('io', 'io.weight', 1 + Math.floor(((blockIO.weight - 10) * 9999) / 990), 'blockIO.weight'));
  if (nonzero(blockIO?.leafWeight)) throw new SpecError('linux.resources.blockIO.leafWeight has no cgroup v2 equivalent');
  for (const d of blockIO?.weightDevice ?? []) {
    if (given(d.weight)) records.push(set('io', 'io.weight', `${device(d)} ${1 + Math.floor(((d.weight - 10) * 9999) / 990)}`, 'blockIO.weightDevice'));
  }
  for (const [key, , name] of THROTTLES) {
    for (const d of (blockIO?.[key] ?? []) as Array<{ major: number; minor: number; rate: number }>) records.push(set('io', 'io.max', `${device(d)} ${name}=${d.rate}`, `blockIO.${key}`));
  }
  for (const { pageSize, limit } of resources.hugepageLimits ?? []) records.push(set('hugetlb', `hugetlb.${pageSize}.max`, limit, 'hugepageLimits'));
  if (nonzero(resources.network?.classID) || resources.network?.priorities?.length) {
    throw new SpecError('linux.resources.network needs the cgroup v1 net_cls and net_prio controllers: cgroup v2 has none');
  }
  records.push(...rdmaRecords(resources));
  for (const [file, value] of Object.entries(resources.unified ?? {})) records.push(set(file.slice(0, file.indexOf('.')), file, value, `unified.${file}`));
  if (resources.devices) records.push(...ebpfDeviceRecords(resources.devices));
  return records;
}

/** rdma.max lines, the same in v1 and v2. */
function rdmaRecords(resources: LinuxResources): RecordList {
  return Object.entries(resources.rdma ?? {}).map(([name, limits]) => {
    const value = (n: number | undefined) => (given(n) ? String(n) : 'max');
    return set('rdma', 'rdma.max', `${name} hca_handle=${value(limits.hcaHandles)} hca_object=${value(limits.hcaObjects)}`, `rdma.${name}`);
  });
}

/**
 * The `cgroup_set` records for resources (already validated: validateResources), and the device rules' records
 * where `devices` is given (an empty list too: runc's always-allowed devices and nothing else);
 * cgroup2Devices: devicesCgroup2's mount, for the device rules of a v1 host.
 */
export function cgroupResourceRecords(resources: LinuxResources | undefined, mode: CgroupMode, cgroup2Devices?: string): RecordList {
  if (!resources) return [];
  return mode === 'v2' ? v2Records(resources) : v1Records(resources, cgroup2Devices);
}
