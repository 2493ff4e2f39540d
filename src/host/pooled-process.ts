// A pooled process (docs/warm-pool.md): started idle by a launcher's refill with its kind's code loaded, it waits on
// its socket in the pool directory for one piece of work — the arguments, environment, cwd, umask and fds a
// launcher hands it (native/common/warm-pool.c) — takes it, and becomes what the work needs. It accepts one
// connection and then serves no other; unused, it exits after its idle time.
import { closeSync, lstatSync, watch, writeSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { preloadFileLocks } from './file-lock.js';
import { handoffAddon } from './handoff-addon.js';
import { processStartTime } from './host-process.js';
import { bindUnixSocket, socketFd, unlinkSocket } from './unix-socket.js';
import { buildId, memberSocketName, type PoolKind } from './warm-pool.js';
import { POOL_HANDOFF_TIMEOUT_MS, POOL_LOAD_TIME_ENV, POOL_READY, POOL_TAKEN } from '../generated/facts.js';

/** fd 3 of a new pooled process: the refill's pipe, told POOL_READY once the process is in the pool. */
const READY_FD = 3;

export interface Work {
  args: string[];
  /** The fds received beyond 0-2 (now at 0-2), at the numbers they landed on. */
  fds: number[];
  /** The connection to the launcher: a CLI worker reports its exit status there. */
  connection: Socket;
  /** The handoff's other records (the first of each key), for the kind's own. */
  records: Map<string, string>;
}

let launcher: number | undefined;

/**
 * Pays, while idle, what the work would otherwise pay in its first milliseconds: the native addons it uses
 * loaded, and the garbage of the code's load collected (a CPU profile of a pooled create showed 4 ms of GC).
 */
function settle(): void {
  handoffAddon();
  preloadFileLocks();
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  // V8's code cache carries a hash of the flags it was made under: a flag left changed would make the cache this
  // process writes once taken one that every other process rejects (and compiles the bundle anew), and the cache
  // it was loaded with one it could not have used.
  setFlagsFromString('--no-expose-gc');
}

function socketInode(path: string): number | undefined {
  try {
    return lstatSync(path).ino;
  } catch {
    return undefined;
  }
}

/** The pid of the process this one does the work of: the launcher's for a taken CLI worker, else this process's. */
export function callerPid(): number {
  return launcher ?? process.pid;
}

/** NUL-terminated key=value records, in order. */
function parseRecords(data: Buffer): Array<[string, string]> {
  const records: Array<[string, string]> = [];
  for (const text of data.toString('utf8').split('\0').slice(0, -1)) {
    const equals = text.indexOf('=');
    if (equals <= 0) throw new Error(`malformed handoff record "${text.slice(0, 40)}"`);
    records.push([text.slice(0, equals), text.slice(equals + 1)]);
  }
  return records;
}

function environmentOf(entries: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of entries) {
    const equals = entry.indexOf('=');
    if (equals > 0) env[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
  return env;
}

/** Takes the work in this process: fds at 0-2, cwd, umask, environment, priority. Throws when it cannot. */
function becomeWorker(records: Array<[string, string]>, fds: number[]): Omit<Work, 'connection'> {
  const values = (key: string) => records.filter(([name]) => name === key).map(([, value]) => value);
  const env = environmentOf(values('env'));
  // The launchers do not offer such work (pool_take); this process refuses it all the same.
  for (const name of POOL_LOAD_TIME_ENV) {
    if (env[name] !== process.env[name]) throw new Error(`the work sets ${name}, which this process read as it loaded`);
  }
  if (fds.length < 3) throw new Error('the handoff brought no stdio');
  const cwd = values('cwd')[0];
  const umask = values('umask')[0];
  const nice = values('nice')[0];
  const launcherPid = values('launcher')[0];
  process.chdir(cwd ?? '/');
  const addon = handoffAddon();
  // This process keeps 0-2 open (on /dev/null) while pooled, so no received fd lands there.
  for (let fd = 0; fd < 3; fd++) addon.dup2(fds[fd]!, fd);
  for (let fd = 0; fd < 3; fd++) addon.close(fds[fd]!);
  if (umask !== undefined) process.umask(parseInt(umask, 8));
  for (const name of Object.keys(process.env)) delete process.env[name];
  Object.assign(process.env, env);
  addon.renice(nice !== undefined ? Number(nice) : 0);
  launcher = launcherPid !== undefined ? Number(launcherPid) : undefined;
  return { args: values('arg'), fds: fds.slice(3), records: new Map(records.slice().reverse()) };
}

/**
 * Puts this process in the pool at dir as a member of kind and waits for its work; exits after idleSeconds
 * without any, or once the code installed is no longer the code it runs. The process takes title(args) as its
 * title before it tells the launcher it has the work (ps shows it as what it has become from then on).
 */
export async function waitForWork(kind: PoolKind, idleSeconds: number, dir: string, title: (args: string[]) => string): Promise<Work> {
  const build = buildId(kind);
  const startTime = processStartTime(process.pid);
  if (!build || !startTime) process.exit(1);
  const path = join(dir, memberSocketName({ kind, build, pid: process.pid, startTime }));
  const server = createServer({ pauseOnConnect: true });
  let inode: number;
  try {
    // The launcher made the pool directory; one removed since (the pool taken away) is not made again.
    inode = await bindUnixSocket(path, (privatePath) => new Promise((resolve, reject) => {
      server.once('error', reject).listen(privatePath, () => resolve());
    }), { makeDirectory: false });
  } catch {
    process.exit(1);
  }
  settle();
  try {
    writeSync(READY_FD, POOL_READY);
    closeSync(READY_FD);
  } catch {
    // started by hand: no one waits
  }
  const leave = () => {
    unlinkSocket(path, inode);
    process.exit(0);
  };
  const idle = setTimeout(leave, idleSeconds * 1000);
  process.once('SIGTERM', leave);
  let taken = false;
  // A member whose socket file is removed or replaced (the pool directory removed) can no longer be taken: it leaves.
  const watcher = watch(dir, { persistent: false }, () => {
    if (!taken && socketInode(path) !== inode) leave();
  }).on('error', leave);
  if (socketInode(path) !== inode) leave();
  return new Promise((resolve) => {
    server.on('connection', (connection: Socket) => {
      // One connection only: any other that was queued with it is dropped, and its launcher tries elsewhere.
      if (taken) return void connection.destroy();
      taken = true;
      watcher.close();
      server.close();
      unlinkSocket(path, inode);
      clearTimeout(idle);
      process.removeListener('SIGTERM', leave);
      const fd = socketFd(connection);
      let work: Omit<Work, 'connection'>;
      try {
        if (fd === undefined) throw new Error('no fd for the connection');
        const { data, fds } = handoffAddon().receive(fd, POOL_HANDOFF_TIMEOUT_MS);
        if (buildId(kind) !== build) throw new Error('the installed code changed since this process loaded it');
        work = becomeWorker(parseRecords(data), fds);
        process.title = title(work.args);
        writeSync(fd, POOL_TAKEN);
      } catch {
        // The launcher falls back to a fresh Node, which does the work.
        process.exit(0);
      }
      resolve({ ...work, connection });
    });
  });
}
