// Where the lazy loader of an image store keeps its things: STORE/lazy/ (0700) holds its control socket (0600),
// the lock its processes hold while they live, the FUSE mount its image files are served at, the images it serves
// (so that a restarted server serves the same files under the same node ids), per-image statistics and its log.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface LoaderPaths {
  dir: string;
  socket: string;
  /** The NBD server microVMs read their lazy disks from (one export per image, by file name). */
  nbd: string;
  lock: string;
  mount: string;
  images: string;
  stats: string;
  log: string;
}

export function loaderPaths(storeDir: string): LoaderPaths {
  const dir = join(storeDir, 'lazy');
  return {
    dir,
    socket: join(dir, 'loader.sock'),
    nbd: join(dir, 'nbd.sock'),
    lock: join(dir, 'loader.lock'),
    mount: join(dir, 'images'),
    images: join(dir, 'served.json'),
    stats: join(dir, 'stats'),
    log: join(dir, 'loader.log'),
  };
}

export function makeLoaderDirs(paths: LoaderPaths): void {
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  mkdirSync(paths.mount, { recursive: true, mode: 0o700 });
  mkdirSync(paths.stats, { recursive: true, mode: 0o700 });
}

/** The file name an image is served under: its manifest digest's hex. */
export function imageFileName(manifest: string): string {
  return manifest.slice(manifest.indexOf(':') + 1);
}
