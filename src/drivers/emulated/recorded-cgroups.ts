// The cgroups a host agent recorded in its sandbox directory (native/agent/cgroup_record.h), removed by the host once the
// agent is gone without removing them itself (killed with SIGKILL): their processes killed, the directories and
// the parents the agent made for them removed.
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CGROUP_RECORD_DIR } from '../../generated/facts.js';

const CGROUP_ROOT = '/sys/fs/cgroup/';
/** How long the last processes of a cgroup get to be killed and reaped before its removal is given up. */
const REMOVAL_MS = 3000;

interface RecordedCgroup {
  path: string;
  /** The leaf and this many levels above it, less one, were made by the agent. */
  levels: number;
}

/**
 * The lines `LEVELS PATH` of a record; a path that is not a cgroup's directory is no business of ours, nor is a
 * last line without its newline (cut short by the agent's death).
 */
function readRecord(file: string): RecordedCgroup[] {
  const cgroups: RecordedCgroup[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n').slice(0, -1)) {
    const match = /^(\d+) (.+)$/.exec(line);
    if (!match) continue;
    const path = match[2]!;
    if (!path.startsWith(CGROUP_ROOT) || posix.normalize(path) !== path) continue;
    cgroups.push({ path, levels: Number(match[1]) });
  }
  return cgroups;
}

function writeIfThere(file: string, value: string): void {
  try {
    if (existsSync(file)) writeFileSync(file, value);
  } catch {
    // a v1 freezer file in a hierarchy without it, a cgroup going away: nothing to do
  }
}

/** Kills what is left in the cgroup (thawed first: a frozen process cannot die); true once it holds none. */
function emptied(path: string): boolean {
  let pids: string[];
  try {
    pids = readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return true; // gone already
  }
  if (!pids.length) return true;
  writeIfThere(join(path, 'freezer.state'), 'THAWED');
  writeIfThere(join(path, 'cgroup.freeze'), '0');
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone
    }
  }
  return false;
}

/** rmdir of the leaf, then of the parents the agent made, as long as they are empty; false while the leaf is busy. */
function removed(cgroup: RecordedCgroup): boolean {
  let path = cgroup.path;
  for (let level = 0; level < Math.max(1, cgroup.levels); level++, path = dirname(path)) {
    try {
      rmdirSync(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (level === 0 && code === 'EBUSY') return false;
      if (code !== 'ENOENT') return true; // a parent someone else still uses
    }
  }
  return true;
}

/**
 * Removes the cgroups recorded in a sandbox directory whose agent is gone, and their records; gives the
 * directories that could not be removed in time.
 */
export async function removeRecordedCgroups(sandboxDir: string): Promise<string[]> {
  const recordDir = join(sandboxDir, CGROUP_RECORD_DIR);
  let names: string[];
  try {
    names = readdirSync(recordDir).filter((name) => !name.startsWith('.'));
  } catch {
    return [];
  }
  const left: string[] = [];
  for (const name of names) {
    const file = join(recordDir, name);
    let pending = readRecord(file);
    for (const until = Date.now() + REMOVAL_MS; pending.length && Date.now() < until;) {
      pending = pending.filter((cgroup) => !(emptied(cgroup.path) && removed(cgroup)));
      if (pending.length) await sleep(10);
    }
    left.push(...pending.map((cgroup) => cgroup.path));
    if (!pending.length) rmSync(file, { force: true });
  }
  return left;
}
