// Unpacking in a worker thread. Writing a rootfs is mostly blocking filesystem calls (creating a file costs
// hundreds of microseconds on some filesystems); in their own thread they no longer hold up the download running
// in the main thread, so a pull and the unpacking of the layers it brings use two cores. The worker follows each
// layer's partial file through a GrowingBlob of its own, kept up to date by the main thread's BlobUpdates.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { GrowingBlob, type BlobUpdate } from './growing-blob.js';
import type { ImageLimits } from './image-limits.js';
import { UnpackError } from '../errors/errors.js';
import { unpackError, unpackLayers } from './unpack.js';

const ROLE = 'runbox-unpack';

export interface WorkerLayer {
  digest: string;
  mediaType: string;
  diffId?: string;
}

/** Tells a listener how a layer's blob comes along: until it is stored, or fails. */
export type LayerFeed = (digest: string, listener: (update: BlobUpdate) => void) => Promise<void>;

type ToWorker = { type: 'layers'; rootfs: string; layers: WorkerLayer[]; limits?: ImageLimits } | { type: 'blob'; layer: number; update: BlobUpdate };
type FromWorker = { type: 'warn'; message: string } | { type: 'done' } | { type: 'failed'; message: string; unpack?: { layer: string; entry?: string; reason: string } };

// A 'grew' is passed on only after this many more bytes: the worker needs no word per network chunk.
const GREW_STEP = 256 * 1024;

export class UnpackWorker {
  private readonly worker: Worker;
  private readonly result: Promise<void>;

  /** Starts the worker at once, so that its start-up overlaps whatever comes before `unpack` (the pull's first requests). */
  constructor(warn: (message: string) => void = (message) => process.stderr.write(`runbox: ${message}\n`)) {
    // Relative to dist/src/cli/ as well as to this module: in the bundled CLI every module has main.js's URL.
    this.worker = new Worker(new URL('../image/unpack-worker.js', import.meta.url), { workerData: { role: ROLE } });
    this.result = new Promise<void>((resolve, reject) => {
      this.worker.on('message', (message: FromWorker) => {
        if (message.type === 'warn') warn(message.message);
        else if (message.type === 'done') resolve();
        else if (message.unpack) reject(unpackError(message.unpack.layer, message.unpack.entry, message.unpack.reason));
        else reject(new Error(message.message));
      });
      this.worker.once('error', reject);
      this.worker.once('exit', (code) => reject(new Error(`the unpack worker stopped (exit code ${code})`)));
    });
    this.result.catch(() => {}); // awaited in unpack; a worker stopped unused must not reject unobserved
  }

  /** Applies `layers` in order onto `rootfs` (empty); on failure the rootfs is removed, as by unpackLayers. Once only; the owner stops the worker. */
  async unpack(rootfs: string, layers: WorkerLayer[], feed: LayerFeed, limits?: ImageLimits): Promise<void> {
    this.post({ type: 'layers', rootfs, layers, ...(limits ? { limits } : {}) });
    layers.forEach((layer, index) => {
      let posted = -GREW_STEP;
      const listener = (update: BlobUpdate): void => {
        if (update.kind === 'grew') {
          if (update.written - posted < GREW_STEP) return;
          posted = update.written;
        } else if (update.kind === 'begin') {
          posted = update.written;
        }
        this.post({ type: 'blob', layer: index, update });
      };
      feed(layer.digest, listener).catch((error: Error) => listener({ kind: 'failed', message: error.message }));
    });
    await this.result;
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }

  private post(message: ToWorker): void {
    this.worker.postMessage(message);
  }
}

function runWorker(): void {
  const port = parentPort!;
  const blobs: GrowingBlob[] = [];
  const send = (message: FromWorker) => port.postMessage(message);
  const unpack = async (rootfs: string, layers: WorkerLayer[], limits: ImageLimits | undefined) => {
    try {
      const sources = layers.map((layer, index) => ({ ...layer, open: async () => blobs[index]!.reader() }));
      await unpackLayers(sources, rootfs, { warn: (message) => send({ type: 'warn', message }), ...(limits ? { limits } : {}) });
      send({ type: 'done' });
    } catch (error) {
      const unpack = error instanceof UnpackError ? { layer: error.layer, reason: error.reason, ...(error.entry === undefined ? {} : { entry: error.entry }) } : undefined;
      send({ type: 'failed', message: (error as Error).message, ...(unpack ? { unpack } : {}) });
    }
  };
  port.on('message', (message: ToWorker) => {
    if (message.type === 'layers') {
      blobs.push(...message.layers.map(() => new GrowingBlob()));
      void unpack(message.rootfs, message.layers, message.limits);
    } else {
      blobs[message.layer]!.apply(message.update);
    }
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) runWorker();
