// config.json's linux.resources (runtime-spec config-linux.md "Control groups"): the part runbox applies, checked
// before anything is created. The same object is what containerd sends to Update and `runbox update -r` reads.
import { SpecError } from '../errors/errors.js';

export interface LinuxMemory {
  limit?: number;
  reservation?: number;
  swap?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
}

export interface LinuxCpu {
  shares?: number;
  quota?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
}

export interface LinuxDeviceNumber {
  major: number;
  minor: number;
}

export interface LinuxWeightDevice extends LinuxDeviceNumber {
  weight?: number;
  leafWeight?: number;
}

export interface LinuxThrottleDevice extends LinuxDeviceNumber {
  rate: number;
}

export interface LinuxBlockIO {
  weight?: number;
  leafWeight?: number;
  weightDevice?: LinuxWeightDevice[];
  throttleReadBpsDevice?: LinuxThrottleDevice[];
  throttleWriteBpsDevice?: LinuxThrottleDevice[];
  throttleReadIOPSDevice?: LinuxThrottleDevice[];
  throttleWriteIOPSDevice?: LinuxThrottleDevice[];
}

export interface LinuxDeviceRule {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

export interface LinuxResources {
  memory?: LinuxMemory;
  cpu?: LinuxCpu;
  pids?: { limit: number };
  blockIO?: LinuxBlockIO;
  hugepageLimits?: Array<{ pageSize: string; limit: number }>;
  network?: { classID?: number; priorities?: Array<{ name: string; priority: number }> };
  rdma?: Record<string, { hcaHandles?: number; hcaObjects?: number }>;
  unified?: Record<string, string>;
  devices?: LinuxDeviceRule[];
  [other: string]: unknown;
}

const CPUSET = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

function object(value: unknown, where: string): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new SpecError(`${where} must be an object`);
  return value as Record<string, unknown>;
}

/** 2^63 as a double: int64's largest value (2^63-1) reads as it too, one past it does not. */
const INT64_LIMIT = 2 ** 63;

/** Each key an int64 (or, unsigned, a uint64), as runc's Go types take them. */
function integers(from: Record<string, unknown> | undefined, keys: string[], where: string, unsigned = false): void {
  for (const key of keys) {
    const value = from?.[key];
    if (value === undefined || value === null) continue;
    if (!Number.isInteger(value)) throw new SpecError(`${where}.${key} must be an integer, not ${JSON.stringify(value)}`);
    const n = value as number;
    if (unsigned ? n < 0 || n >= 2 * INT64_LIMIT : n < -INT64_LIMIT || n > INT64_LIMIT) {
      throw new SpecError(`${where}.${key} ${JSON.stringify(value)} is out of range: it must be ${unsigned ? 'a uint64' : 'an int64'}`);
    }
  }
}

function list(value: unknown, where: string): Array<Record<string, unknown>> {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new SpecError(`${where} must be a list`);
  return value.map((item, i) => {
    const entry = object(item, `${where}[${i}]`);
    if (!entry) throw new SpecError(`${where}[${i}] must be an object`);
    return entry;
  });
}

function devices(value: unknown, where: string, extra: string[]): void {
  list(value, where).forEach((device, i) => {
    integers(device, ['major', 'minor'], `${where}[${i}]`);
    integers(device, extra, `${where}[${i}]`, true);
    if (!Number.isInteger(device.major) || !Number.isInteger(device.minor)) throw new SpecError(`${where}[${i}] needs a major and a minor number`);
  });
}

const PAGE_SIZE = /^\d+[KMG]B$/;
const UNIFIED_FILE = /^[a-z_]+\.[a-z0-9_.]+$/;

/** Throws a SpecError naming the first field that is not what the runtime-spec says; where: its JSON path. */
export function validateResources(value: unknown, where = 'linux.resources'): LinuxResources {
  const resources = object(value, where) ?? {};
  const memory = object(resources.memory, `${where}.memory`);
  integers(memory, ['limit', 'reservation', 'swap'], `${where}.memory`);
  integers(memory, ['swappiness'], `${where}.memory`, true);
  const swappiness = memory?.swappiness as number | undefined;
  if (swappiness !== undefined && swappiness !== null && (swappiness < 0 || swappiness > 100)) {
    throw new SpecError(`${where}.memory.swappiness must be between 0 and 100, not ${swappiness}`);
  }
  if (memory?.disableOOMKiller !== undefined && typeof memory.disableOOMKiller !== 'boolean') {
    throw new SpecError(`${where}.memory.disableOOMKiller must be true or false`);
  }
  const cpu = object(resources.cpu, `${where}.cpu`);
  integers(cpu, ['quota', 'realtimeRuntime'], `${where}.cpu`);
  integers(cpu, ['shares', 'period', 'realtimePeriod'], `${where}.cpu`, true);
  for (const key of ['cpus', 'mems']) {
    const list = cpu?.[key];
    if (list !== undefined && list !== '' && (typeof list !== 'string' || !CPUSET.test(list))) {
      throw new SpecError(`${where}.cpu.${key} must be a list such as "0-2,4", not ${JSON.stringify(list)}`);
    }
  }
  const pids = object(resources.pids, `${where}.pids`);
  integers(pids, ['limit'], `${where}.pids`);

  const blockIO = object(resources.blockIO, `${where}.blockIO`);
  integers(blockIO, ['weight', 'leafWeight'], `${where}.blockIO`, true);
  devices(blockIO?.weightDevice, `${where}.blockIO.weightDevice`, ['weight', 'leafWeight']);
  for (const key of ['throttleReadBpsDevice', 'throttleWriteBpsDevice', 'throttleReadIOPSDevice', 'throttleWriteIOPSDevice']) {
    devices(blockIO?.[key], `${where}.blockIO.${key}`, ['rate']);
  }
  list(resources.hugepageLimits, `${where}.hugepageLimits`).forEach((limit, i) => {
    if (typeof limit.pageSize !== 'string' || !PAGE_SIZE.test(limit.pageSize)) {
      throw new SpecError(`${where}.hugepageLimits[${i}].pageSize must be a size such as "2MB", not ${JSON.stringify(limit.pageSize)}`);
    }
    integers(limit, ['limit'], `${where}.hugepageLimits[${i}]`, true);
  });
  const network = object(resources.network, `${where}.network`);
  integers(network, ['classID'], `${where}.network`, true);
  list(network?.priorities, `${where}.network.priorities`).forEach((priority, i) => {
    if (typeof priority.name !== 'string' || !/^[^\s/]+$/.test(priority.name)) throw new SpecError(`${where}.network.priorities[${i}].name must be an interface name`);
    integers(priority, ['priority'], `${where}.network.priorities[${i}]`, true);
  });
  for (const [device, limits] of Object.entries(object(resources.rdma, `${where}.rdma`) ?? {})) {
    if (!/^[^\s/]+$/.test(device)) throw new SpecError(`${where}.rdma: "${device}" is not an RDMA device name`);
    integers(object(limits, `${where}.rdma.${device}`), ['hcaHandles', 'hcaObjects'], `${where}.rdma.${device}`, true);
  }
  for (const [file, setting] of Object.entries(object(resources.unified, `${where}.unified`) ?? {})) {
    if (!UNIFIED_FILE.test(file)) throw new SpecError(`${where}.unified: "${file}" is not a cgroup v2 interface file name`);
    if (typeof setting !== 'string') throw new SpecError(`${where}.unified.${file} must be a string`);
  }
  list(resources.devices, `${where}.devices`).forEach((rule, i) => {
    const at = `${where}.devices[${i}]`;
    if (typeof rule.allow !== 'boolean') throw new SpecError(`${at}.allow must be true or false`);
    if (rule.type !== undefined && rule.type !== null && !['a', 'c', 'b'].includes(rule.type as string)) throw new SpecError(`${at}.type must be a, c or b`);
    integers(rule, ['major', 'minor'], at);
    if (rule.access !== undefined && rule.access !== null && (typeof rule.access !== 'string' || !/^[rwm]*$/.test(rule.access))) {
      throw new SpecError(`${at}.access must be made of r, w and m`);
    }
  });
  return resources as LinuxResources;
}
