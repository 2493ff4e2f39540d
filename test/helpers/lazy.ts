// What the lazy-loading tests look at: the loader's processes of a store, loop devices backed by its files, and a
// teardown that takes down what a test's bundles left mounted, then waits for the loader to end by itself.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mountPointsUnder, unmountUnder } from '../../src/host/mounts.js';
import { pidsWith } from './containerd.js';

/** The keeper and server processes of the loader of `store`. */
export function loaderProcesses(store: string): { keeper: number[]; server: number[] } {
  return { keeper: pidsWith('loader-main.js keeper', store), server: pidsWith('loader-main.js server', store) };
}

/** Loop devices whose backing file is in `store`'s loader mount. */
export function loopDevicesOf(store: string): string[] {
  const dir = join(store, 'lazy', 'images');
  return readdirSync('/sys/block').filter((name) => {
    try {
      return name.startsWith('loop') && readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').startsWith(`${dir}/`);
    } catch {
      return false;
    }
  });
}

/**
 * Sets the read-ahead of every loop device not bound to a file. A loop device keeps the largest read-ahead any
 * earlier user gave it (2560 KiB once it was bound to a file on a disk with a large optimal I/O size, as this
 * host's is), so which one a mount gets decides how far the kernel reads ahead unless runbox sets it.
 */
export function setFreeLoopReadahead(kib: number): void {
  for (const name of readdirSync('/sys/block')) {
    if (!name.startsWith('loop') || existsSync(`/sys/block/${name}/loop/backing_file`)) continue;
    try {
      writeFileSync(`/sys/block/${name}/queue/read_ahead_kb`, `${kib}\n`);
    } catch {
      // bound meanwhile, or gone
    }
  }
}

/** Waits (up to `ms`) until the loader of `store` has ended and left no mount nor loop device. */
export async function loaderGone(store: string, ms = 15_000): Promise<{ processes: number[]; mounts: string[]; loops: string[] }> {
  const look = () => {
    const { keeper, server } = loaderProcesses(store);
    return { processes: [...keeper, ...server], mounts: mountPointsUnder(store), loops: loopDevicesOf(store) };
  };
  for (let waited = 0; waited < ms; waited += 100) {
    const seen = look();
    if (!seen.processes.length && !seen.mounts.length && !seen.loops.length) return seen;
    await sleep(100);
  }
  return look();
}

/** Teardown: unmount the store's bundles, then kill its loader if it did not end by itself. */
export async function stopLoader(store: string): Promise<void> {
  unmountUnder(join(store, 'bundles'));
  const left = await loaderGone(store, 10_000);
  for (const pid of left.processes) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  unmountUnder(store);
}

/**
 * A directory for a test's lazy store (DIR/store) and bundles: at teardown, whatever is mounted in it is taken
 * down, the store's loader is waited for (or killed), and the directory removed.
 */
export function lazyScratch(owner: { teardown(cleanup: () => unknown): void }): { dir: string; store: string } {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-lazy-'));
  const store = join(dir, 'store');
  owner.teardown(async () => {
    unmountUnder(join(dir, 'bundle'));
    for (const point of mountPointsUnder(dir)) if (!point.startsWith(store)) unmountUnder(point);
    await stopLoader(store);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, store };
}
