// The lazy loader's keeper: the long-lived parent of its server. It takes the store's loader lock (one loader per
// store), mounts the FUSE filesystem and holds its /dev/fuse descriptor, and starts the server with it. A server
// that dies (a crash, kill -9) is started again on the same descriptor, and takes over the connection: the
// kernel queues again what the dead one had read, so reads in running containers wait and then complete instead
// of failing. A server that ends by itself (nothing uses it) ends the keeper too.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { FileLock } from '../host/file-lock.js';
import { mountFuse, unmount } from '../fuse/fuse-mount.js';
import { isMountPoint } from '../host/mounts.js';
import { loaderPaths, makeLoaderDirs } from './loader-paths.js';

/** Restarts allowed within RESTART_WINDOW_MS before the keeper gives up (a server that cannot start). */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

export async function runKeeper(storeDir: string): Promise<number> {
  const paths = loaderPaths(storeDir);
  makeLoaderDirs(paths);
  const lock = FileLock.tryAcquire(paths.lock);
  if (!lock) return 0; // another loader serves this store, or is on its way out: the client asks again
  // What a loader killed outright left mounted: its images are unusable (ENOTCONN) and nobody can be using them.
  if (isMountPoint(paths.mount)) await unmount(paths.mount);
  const fuse = await mountFuse(paths.mount, 'runbox-lazy');
  const log = openSync(paths.log, 'a', 0o600);
  const main = fileURLToPath(new URL('./loader-main.js', import.meta.url));
  const restarts: number[] = [];
  let child: ReturnType<typeof spawn> | undefined;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => child?.kill(signal));
  for (let takeOver = false; ; takeOver = true) {
    child = spawn(process.execPath, [main, 'server', storeDir], {
      stdio: ['ignore', log, log, fuse, lock.descriptor!],
      env: { ...process.env, UV_THREADPOOL_SIZE: '16', ...(takeOver ? { RUNBOX_LAZY_TAKE_OVER: '1' } : {}) },
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child!.once('exit', (c, s) => resolve([c, s])));
    if (code === 0) break;
    const now = Date.now();
    restarts.push(now);
    while (restarts.length && restarts[0]! < now - RESTART_WINDOW_MS) restarts.shift();
    if (restarts.length > MAX_RESTARTS || signal === 'SIGTERM' || signal === 'SIGINT') {
      await unmount(paths.mount).catch(() => {});
      break;
    }
    await sleep(100);
  }
  closeSync(log);
  closeSync(fuse);
  lock.release();
  return 0;
}
