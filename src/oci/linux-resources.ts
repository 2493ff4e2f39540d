// config.json's linux.resources (runtime-spec config-linux.md "Control groups"): the part runbox applies, checked
// before anything is created. The same object is what containerd sends to Update and `runbox update -r` reads.
import { SpecError } from './spec-error.js';

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

export interface LinuxResources {
  memory?: LinuxMemory;
  cpu?: LinuxCpu;
  pids?: { limit: number };
  [other: string]: unknown;
}

const CPUSET = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

function object(value: unknown, where: string): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new SpecError(`${where} must be an object`);
  return value as Record<string, unknown>;
}

function integers(from: Record<string, unknown> | undefined, keys: string[], where: string): void {
  for (const key of keys) {
    const value = from?.[key];
    if (value !== undefined && value !== null && !Number.isInteger(value)) throw new SpecError(`${where}.${key} must be an integer, not ${JSON.stringify(value)}`);
  }
}

/** Throws a SpecError naming the first field that is not what the runtime-spec says; where: its JSON path. */
export function validateResources(value: unknown, where = 'linux.resources'): LinuxResources {
  const resources = object(value, where) ?? {};
  const memory = object(resources.memory, `${where}.memory`);
  integers(memory, ['limit', 'reservation', 'swap', 'swappiness'], `${where}.memory`);
  const swappiness = memory?.swappiness as number | undefined;
  if (swappiness !== undefined && swappiness !== null && (swappiness < 0 || swappiness > 100)) {
    throw new SpecError(`${where}.memory.swappiness must be between 0 and 100, not ${swappiness}`);
  }
  if (memory?.disableOOMKiller !== undefined && typeof memory.disableOOMKiller !== 'boolean') {
    throw new SpecError(`${where}.memory.disableOOMKiller must be true or false`);
  }
  const cpu = object(resources.cpu, `${where}.cpu`);
  integers(cpu, ['shares', 'quota', 'period', 'realtimeRuntime', 'realtimePeriod'], `${where}.cpu`);
  for (const key of ['cpus', 'mems']) {
    const list = cpu?.[key];
    if (list !== undefined && list !== '' && (typeof list !== 'string' || !CPUSET.test(list))) {
      throw new SpecError(`${where}.cpu.${key} must be a list such as "0-2,4", not ${JSON.stringify(list)}`);
    }
  }
  const pids = object(resources.pids, `${where}.pids`);
  integers(pids, ['limit'], `${where}.pids`);
  return resources as LinuxResources;
}
