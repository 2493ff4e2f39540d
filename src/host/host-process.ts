import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** The fields of /proc/PID/stat from the state (field 3) on, or undefined when there is no such process. */
function statFields(pid: number): string[] | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields after it start after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * The start time (clock ticks since boot, field 22 of /proc/PID/stat) of a live host process, or undefined when
 * there is no such process or it is a zombie. Together with the pid it names one process for good: a recycled
 * pid has another start time.
 */
export function processStartTime(pid: number): string | undefined {
  const fields = statFields(pid);
  if (!fields || fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

/** The pids of the processes named `command` (their comm) for which `matches(pid)` holds (it may throw: gone). */
function processesNamed(command: string, matches: (pid: string) => boolean): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== command.slice(0, 15)) continue;
      if (matches(entry)) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

/** The pids of the processes named `command` (their comm) one of whose arguments contains `needle`. */
export function processesWithArgument(command: string, needle: string): number[] {
  return processesNamed(command, (pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((arg) => arg.includes(needle)));
}

/** The pids of the processes named `command` whose working directory is `dir`. */
export function processesIn(command: string, dir: string): number[] {
  return processesNamed(command, (pid) => readlinkSync(`/proc/${pid}/cwd`) === dir);
}

/**
 * Ends processes (pid and start time, so that a recycled pid is left alone): SIGTERM, then SIGKILL for those still
 * there after `graceMs`; resolves once they are gone (or a second after the SIGKILL).
 */
export async function endProcesses(processes: Array<{ pid: number; startTime: string | undefined }>, graceMs: number): Promise<void> {
  const alive = () => processes.filter(({ pid, startTime }) => isProcessAlive(pid, startTime));
  const send = (signal: NodeJS.Signals) => {
    for (const { pid } of alive()) {
      try {
        process.kill(pid, signal);
      } catch {
        // gone
      }
    }
  };
  send('SIGTERM');
  for (const until = Date.now() + graceMs; alive().length && Date.now() < until;) await sleep(10);
  if (!alive().length) return;
  send('SIGKILL');
  for (const until = Date.now() + 1000; alive().length && Date.now() < until;) await sleep(10);
}

/**
 * SIGKILLs the processes named `command` that have an argument under `dir` or run in `dir` (a process started
 * elsewhere whose directory was moved there: a pooled VM's QEMU, drivers/qemu/vm-reserve.ts).
 */
export function killProcessesUnder(command: string, dir: string): number[] {
  const pids = [...new Set([...processesWithArgument(command, `${dir}/`), ...processesIn(command, dir)])];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  return pids;
}

/** The parent's pid (field 4 of /proc/PID/stat), or undefined when there is no such process. */
export function parentPid(pid: number): number | undefined {
  const fields = statFields(pid);
  return fields ? Number(fields[1]) : undefined;
}

/** A process's resident set size in KiB (VmRSS of /proc/PID/status), or undefined once it is gone. */
export function processRssKib(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s*(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the process that had this pid and start time still runs. Without a start time the answer is no:
 * pids wrap quickly (pid_max is often 32768), and acting on a pid alone could signal a stranger.
 */
export function isProcessAlive(pid: number, startTime: string | undefined): boolean {
  return startTime !== undefined && processStartTime(pid) === startTime;
}

/**
 * The processes the runtime and the shim see through a container's pid: the host's, unless a caller gives its
 * own (the unit tests' fake driver, whose processes are not the host's).
 */
export interface ProcessTable {
  /** The start time of a live process, as processStartTime; undefined when it is not there. */
  startTime(pid: number): string | undefined;
  /** Whether the process with this pid and start time still runs, as isProcessAlive. */
  isAlive(pid: number, startTime: string | undefined): boolean;
  /** Sends a signal (process.kill); throws when there is no such process. */
  kill(pid: number, signal: NodeJS.Signals | number): void;
}

export const hostProcesses: ProcessTable = {
  startTime: processStartTime,
  isAlive: isProcessAlive,
  kill: (pid, signal) => {
    process.kill(pid, signal);
  },
};

/**
 * `argv` run so that it dies (SIGKILL) when the thread that spawned it ends, however that ends: util-linux's
 * setpriv sets the parent-death signal and execs it, so the child's pid is the program's.
 */
export function withParentDeath(argv: string[]): string[] {
  return ['setpriv', '--pdeathsig', 'KILL', '--', ...argv];
}
