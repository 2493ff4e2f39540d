// runbox image optimize: the workload run once in a runbox sandbox on the image served lazily from a store of its
// own (a cold cache, nothing fetched in the background), every read of file data recorded by the loader; then the
// image converted to eStargz with the files read first, in the order first read, before `.prefetch.landmark`,
// and the large files read only in part cut into chunks at the ranges read, which runbox prefetches too.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectPath } from '../host/install-paths.js';
import { mountPointsUnder, unmountUnder } from '../host/mounts.js';
import type { ImageRecord } from '../image/image-index.js';
import type { ImageStore } from '../image/image-store.js';
import { convertToEstargz, type Workload } from '../image/lazy/estargz-convert.js';
import { lazyBundleFromImage } from './lazy-bundle.js';
import { connectLoader } from './loader-client.js';
import type { RegistrySettings } from './loader-protocol.js';
import { LazyLoaderError } from '../errors/errors.js';

/** A file at least this large, of which at most half was read, is prefetched by ranges rather than whole. */
const PARTIAL_FILE_BYTES = 1024 * 1024;

export interface OptimizeOptions {
  /** The workload's arguments (replacing the image's command); none: the image's own. */
  args: string[];
  /** How long the workload may run before it is stopped (upstream's --period). */
  periodMs: number;
  registry: RegistrySettings;
  /** A store of its own for the recording run, with the same registry settings. */
  scratchStore: (dir: string) => ImageStore;
}

function runbox(args: string[], inherit: boolean): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(projectPath('bin', 'runbox'), args, { stdio: inherit ? ['ignore', 'inherit', 'inherit'] : 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

/** The workload as recorded: whole files in first-read order, and the ranges of large files read in part. */
export function workloadFrom(accesses: Array<{ path: string; size: number; ranges: Array<[number, number]> }>): Workload {
  const files: string[] = [];
  const ranges = new Map<string, Array<[number, number]>>();
  for (const access of accesses) {
    const read = access.ranges.reduce((sum, [from, to]) => sum + to - from, 0);
    if (access.size >= PARTIAL_FILE_BYTES && read * 2 <= access.size) ranges.set(access.path, access.ranges);
    files.push(access.path);
  }
  return { files, ranges };
}

/** Runs the workload on `source`, records what it reads, and writes the optimised image as `target`. */
export async function optimizeImage(store: ImageStore, source: string, target: string, options: OptimizeOptions): Promise<{ image: ImageRecord; workload: Workload }> {
  const scratch = mkdtempSync(join(tmpdir(), 'runbox-optimize-'));
  const scratchStore = options.scratchStore(join(scratch, 'store'));
  const bundle = join(scratch, 'bundle');
  const root = join(scratch, 'state');
  const id = `optimize-${process.pid}`;
  let workload: Workload;
  try {
    await lazyBundleFromImage(scratchStore, source, bundle, { registry: options.registry, backgroundRate: 0, record: true, ...(options.args.length ? { overrides: { args: options.args } } : {}) });
    const running = runbox(['--root', root, 'run', '--bundle', bundle, id], true);
    // Unreferenced: a workload that ends first does not keep the CLI waiting for the period.
    const ended = await Promise.race([running.then(() => true), sleep(options.periodMs, undefined, { ref: false }).then(() => false)]);
    if (!ended) {
      await runbox(['--root', root, 'kill', id, 'KILL'], false);
      await running;
    }
    await runbox(['--root', root, 'delete', '--force', id], false);
    const loader = await connectLoader(scratchStore.dir, false);
    if (!loader) throw new LazyLoaderError('the lazy loader of the recording run is gone');
    try {
      const reply = await loader.ask({ op: 'accesses', image: scratchStore.find(source)!.name });
      if (!reply.ok || !('accesses' in reply)) throw new LazyLoaderError(reply.ok ? 'no accesses' : reply.error);
      workload = workloadFrom(reply.accesses);
    } finally {
      loader.close();
    }
  } finally {
    unmountUnder(bundle);
    scratchStore.close();
    // The loader ends once nothing uses it; its FUSE mount goes with it.
    for (let i = 0; i < 100 && mountPointsUnder(scratch).length > 0; i++) await sleep(100);
    unmountUnder(scratch);
    rmSync(scratch, { recursive: true, force: true });
  }
  return { image: await convertToEstargz(store, source, target, workload), workload };
}
