import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { readFileSync } from 'node:fs';
import { validateResources, type LinuxResources } from '../../oci/linux-resources.js';
import { RuntimeError, UsageError } from '../../errors/errors.js';
import { context } from '../context.js';
import { parseSize } from '../parse-size.js';

/** runc's sizes: bytes, or with a binary unit (64m, 1g); -1 is no limit. */
function bytes(flag: string, text: string): number {
  if (text.trim() === '-1') return -1;
  try {
    return parseSize(text);
  } catch (error) {
    throw new UsageError(`--${flag}: ${(error as Error).message}`);
  }
}

function integer(flag: string, text: string): number {
  if (!/^-?\d+$/.test(text.trim())) throw new UsageError(`--${flag}: "${text}" is not an integer`);
  return Number(text);
}

export default class Update extends Command {
  static summary = 'Change the resource limits of a container (cgroups), as runc update does.';
  static args = { id: Args.string({ description: 'container id', required: true }) };
  static flags = {
    resources: Flags.string({ char: 'r', description: 'a runtime-spec LinuxResources JSON file ("-" for stdin); the other flags override it' }),
    memory: Flags.string({ description: 'memory limit (bytes, or 64m, 1g; -1 for none)' }),
    'memory-reservation': Flags.string({ description: 'memory soft limit' }),
    'memory-swap': Flags.string({ description: 'memory plus swap limit' }),
    'cpu-share': Flags.string({ description: 'CPU shares (relative weight)' }),
    'cpu-quota': Flags.string({ description: 'CFS quota in microseconds per period (-1 for none)' }),
    'cpu-period': Flags.string({ description: 'CFS period in microseconds' }),
    'cpu-rt-runtime': Flags.string({ description: 'realtime runtime in microseconds per period' }),
    'cpu-rt-period': Flags.string({ description: 'realtime period in microseconds' }),
    'cpuset-cpus': Flags.string({ description: 'CPUs the container may use (0-2,4)' }),
    'cpuset-mems': Flags.string({ description: 'memory nodes the container may use' }),
    'pids-limit': Flags.string({ description: 'maximum number of processes (-1 for none)' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Update);
    let update: LinuxResources;
    try {
      update = resourcesFrom(flags);
    } catch (error) {
      throw new RuntimeError(`update: ${(error as Error).message}`, { containerId: args.id });
    }
    await context().runtime.update(args.id, update);
  }
}

/** -r FILE, with the flags on top of it. */
function resourcesFrom(flags: Record<string, string | undefined>): LinuxResources {
  let resources: LinuxResources = {};
  if (flags.resources) {
    const file = flags.resources === '-' ? 0 : flags.resources;
    try {
      resources = validateResources(JSON.parse(readFileSync(file, 'utf8')), 'resources');
    } catch (error) {
      throw new UsageError(`${flags.resources === '-' ? 'stdin' : flags.resources}: ${(error as Error).message}`);
    }
  }
  const memory = { ...resources.memory };
  if (flags.memory !== undefined) memory.limit = bytes('memory', flags.memory);
  if (flags['memory-reservation'] !== undefined) memory.reservation = bytes('memory-reservation', flags['memory-reservation']);
  if (flags['memory-swap'] !== undefined) memory.swap = bytes('memory-swap', flags['memory-swap']);
  const cpu = { ...resources.cpu };
  if (flags['cpu-share'] !== undefined) cpu.shares = integer('cpu-share', flags['cpu-share']);
  if (flags['cpu-quota'] !== undefined) cpu.quota = integer('cpu-quota', flags['cpu-quota']);
  if (flags['cpu-period'] !== undefined) cpu.period = integer('cpu-period', flags['cpu-period']);
  if (flags['cpu-rt-runtime'] !== undefined) cpu.realtimeRuntime = integer('cpu-rt-runtime', flags['cpu-rt-runtime']);
  if (flags['cpu-rt-period'] !== undefined) cpu.realtimePeriod = integer('cpu-rt-period', flags['cpu-rt-period']);
  if (flags['cpuset-cpus'] !== undefined) cpu.cpus = flags['cpuset-cpus'];
  if (flags['cpuset-mems'] !== undefined) cpu.mems = flags['cpuset-mems'];
  const update: LinuxResources = { ...resources, memory, cpu };
  if (flags['pids-limit'] !== undefined) update.pids = { limit: integer('pids-limit', flags['pids-limit']) };
  return validateResources(update, 'resources');
}
