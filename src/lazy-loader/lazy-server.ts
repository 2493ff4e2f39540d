// The lazy loader's server: serves the EROFS images of an image store's lazily pulled images over FUSE (the host
// kernel loop-mounts them under each bundle's overlay), fetching their chunks on demand, prefetching what each
// image prioritises before the first container starts and the rest in the background. It answers the CLI on its
// socket, keeps per-image statistics in STORE/lazy/stats/, and ends once nothing uses it: no CLI connected and
// no loop device backed by one of its files, for a grace period.
import { createServer, type Socket } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../host/atomic-file.js';
import { bindUnixSocket, unlinkSocket } from '../host/unix-socket.js';
import { BlobFetcher } from '../image/blob-fetcher.js';
import { ImageStore } from '../image/image-store.js';
import { BackgroundFetch } from '../image/lazy/background-fetch.js';
import { ChunkFetcher } from '../image/lazy/chunk-fetcher.js';
import { AccessRecorder, LazyImage } from '../image/lazy/lazy-image.js';
import { parseReference } from '../image/reference.js';
import { RegistryClient } from '../image/registry-client.js';
import { FuseSession } from '../fuse/fuse-session.js';
import { NbdServer } from '../nbd/nbd-server.js';
import { unmount } from '../fuse/fuse-mount.js';
import { ImageFiles } from './image-files.js';
import { imageFileName, loaderPaths, type LoaderPaths } from './loader-paths.js';
import type { ImageStats, LoaderReply, LoaderRequest, RegistrySettings } from './loader-protocol.js';

interface ServedImage {
  name: string;
  manifest: string;
  registry: RegistrySettings;
  backgroundRate: number;
  /** The store's quota as the last CLI that opened the image gave it: the background fetch stays within it. */
  quota?: number;
  /** Every chunk is local: a restarted server has no background fetch to resume. */
  complete?: boolean;
}

interface Loaded {
  served: ServedImage;
  image: LazyImage;
  fetcher: ChunkFetcher;
  client: RegistryClient;
  layers: Array<{ digest: string; size: number; lazy: boolean }>;
  prefetch: Promise<number> | undefined;
  background: BackgroundFetch | undefined;
}

export const DEFAULT_BACKGROUND_RATE = 8 * 1024 * 1024;

/** The size of a lazy disk over NBD: that of any microVM's rootfs disk (templates are restored with it). */
export const LAZY_DISK_BYTES = 2 ** 40;

async function readPadded(image: LazyImage, offset: number, length: number): Promise<Buffer> {
  if (offset >= image.size) return Buffer.alloc(length);
  const data = await image.read(offset, length);
  return data.length === length ? data : Buffer.concat([data, Buffer.alloc(length - data.length)]);
}

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

/**
 * Loop devices whose backing file is under `dir`: those of `known` still bound to one, or, when none is left, all
 * of /sys/block's (a new user only matters once the ones known have gone).
 */
function loopUsers(dir: string, known: string[]): string[] {
  const bound = (name: string): boolean => {
    try {
      return readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim().startsWith(`${dir}/`);
    } catch {
      return false; // not bound
    }
  };
  const still = known.filter(bound);
  return still.length > 0 ? still : readdirSync('/sys/block').filter((name) => name.startsWith('loop') && bound(name));
}

export class LazyServer {
  private readonly paths: LoaderPaths;
  private readonly store: ImageStore;
  private readonly files = new ImageFiles();
  private served: ServedImage[] = [];
  private readonly loaded = new Map<string, Loaded>();
  private connections = 0;
  private idleSince = Date.now();
  /** The loop devices over the image files the last tick found. */
  private loops: string[] = [];
  private socketInode = 0;
  private nbdInode = 0;
  /** Exports by file name, as large as a microVM's rootfs disk: zeros past the image. */
  private readonly nbd = new NbdServer((name) => {
    const loaded = [...this.loaded.values()].find((image) => imageFileName(image.served.manifest) === name);
    return loaded && { size: LAZY_DISK_BYTES, read: (offset, length) => readPadded(loaded.image, offset, length) };
  }, () => (this.idleSince = Date.now()));
  private stopping = false;
  private lastStats = new Map<string, string>();

  constructor(storeDir: string, private readonly idleMs: number) {
    this.paths = loaderPaths(storeDir);
    this.store = new ImageStore(storeDir);
  }

  async start(fuseFd: number, takeOver: boolean): Promise<void> {
    try {
      this.served = JSON.parse(readFileSync(this.paths.images, 'utf8')) as ServedImage[];
    } catch {
      this.served = [];
    }
    this.served.forEach((served, i) => {
      // The background fetch of an image not yet complete goes on where the last server left it.
      if (this.serve(served, i) && !served.complete) this.startBackground(this.loaded.get(served.manifest)!);
    });
    // No readahead on the image file: past the end of one file's data it would fetch the next file's chunks.
    // The filesystem above reads ahead within each file.
    const session = new FuseSession(fuseFd, this.files, { readers: 6, takeOver, maxReadahead: 0 });
    void session.ended.then(() => this.stop('the FUSE connection ended'));
    const server = createServer((socket) => this.connection(socket));
    this.socketInode = await bindUnixSocket(this.paths.socket, (path) => new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    }));
    this.nbdInode = await bindUnixSocket(this.paths.nbd, (path) => new Promise((resolve, reject) => {
      this.nbd.server.once('error', reject);
      this.nbd.server.listen(path, () => resolve());
    }));
    log(`serving ${this.served.length} images${takeOver ? ' (took over the connection)' : ''}`);
    setInterval(() => this.tick(), 500);
  }

  /** Builds the image (its TOCs are local) and serves it under node id `index` + 2; false when it cannot be. */
  private serve(served: ServedImage, index: number): boolean {
    let loaded: Loaded;
    try {
      loaded = this.load(served);
    } catch (error) {
      log(`image ${served.name}: ${(error as Error).message}`);
      return false;
    }
    this.loaded.set(served.manifest, loaded);
    const name = imageFileName(served.manifest);
    const file = { name, size: loaded.image.size, read: (offset: number, length: number) => loaded.image.read(offset, length) };
    this.files.set(index + 2, name, file.size, async () => file);
    return true;
  }

  private load(served: ServedImage): Loaded {
    const record = this.store.images.get(served.name);
    if (!record?.lazy || record.manifest !== served.manifest) throw new Error(`image ${served.name} is not lazily pulled in this store`);
    const ref = parseReference(served.name);
    const client = new RegistryClient({ ...served.registry });
    const fetcher = new ChunkFetcher(this.store.content, new BlobFetcher(client, client.endpoints(ref.registry), ref.repository), { retries: 2, backoff: (attempt) => client.backoff(attempt) });
    const image = new LazyImage(this.store.content, fetcher, record.manifest, record.lazy);
    return { served, image, fetcher, client, layers: record.lazy.map((layer) => ({ digest: layer.digest, size: layer.size, lazy: layer.toc !== undefined })), prefetch: undefined, background: undefined };
  }

  private connection(socket: Socket): void {
    this.connections++;
    let buffered = '';
    socket.on('data', (data) => {
      buffered += data.toString();
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        void this.request(line).then((reply) => socket.write(`${JSON.stringify(reply)}\n`), () => {});
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.connections--;
      this.idleSince = Date.now();
    });
  }

  private async request(line: string): Promise<LoaderReply> {
    try {
      const request = JSON.parse(line) as LoaderRequest;
      if (request.op === 'ping') return { ok: true };
      if (request.op === 'stats') return { ok: true, stats: await this.allStats() };
      if (request.op === 'open') return await this.open(request.image, request.registry, request.backgroundRate ?? DEFAULT_BACKGROUND_RATE, request.record === true, request.quota);
      if (request.op === 'accesses') {
        const record = this.store.images.get(request.image);
        const recorder = record && this.loaded.get(record.manifest)?.image.recorder;
        if (!recorder) throw new Error(`image ${request.image} is not being recorded`);
        return { ok: true, accesses: recorder.report() };
      }
      return { ok: false, error: 'unknown request' };
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  }

  /** Serves the image (from now on, also after a restart), prefetches its prioritised chunks, starts the rest. */
  private async open(name: string, registry: RegistrySettings, backgroundRate: number, record: boolean, quota: number | undefined): Promise<LoaderReply> {
    const stored = this.store.images.get(name);
    if (!stored?.lazy) throw new Error(`image ${name} is not lazily pulled in store ${this.store.dir}`);
    let index = this.served.findIndex((served) => served.manifest === stored.manifest);
    if (index < 0) {
      this.served.push({ name, manifest: stored.manifest, registry, backgroundRate, ...(quota !== undefined ? { quota } : {}) });
      index = this.served.length - 1;
      if (!this.serve(this.served[index]!, index)) {
        this.served.pop();
        throw new Error(`image ${name} cannot be served (see ${this.paths.log})`);
      }
      this.saveServed();
    } else if (quota !== undefined && this.served[index]!.quota !== quota) {
      this.served[index]!.quota = quota;
      this.saveServed();
    }
    const loaded = this.loaded.get(stored.manifest)!;
    if (record) loaded.image.recorder ??= new AccessRecorder();
    loaded.prefetch ??= loaded.fetcher.ensure(loaded.image.prefetch, 'prefetch').then(() => loaded.image.prefetch.reduce((sum, chunk) => sum + chunk.size, 0));
    const prefetched = await loaded.prefetch.catch((error: Error) => {
      loaded.prefetch = undefined;
      throw error;
    });
    if (!loaded.background && !loaded.served.complete) this.startBackground(loaded);
    return { ok: true, path: join(this.paths.mount, imageFileName(stored.manifest)), size: loaded.image.size, prefetched };
  }

  private saveServed(): void {
    writeFileAtomic(this.paths.images, JSON.stringify(this.served, null, 2));
  }

  private startBackground(loaded: Loaded): void {
    const background = new BackgroundFetch(loaded.fetcher, loaded.image.chunks, loaded.served.backgroundRate, { room: (bytes) => this.room(loaded.served, bytes) });
    loaded.background = background;
    void background.finished.then(() => {
      const { done, total, failed, paused } = background.progress;
      if (this.stopping || done < total || failed > 0 || paused !== undefined || loaded.served.backgroundRate === 0) return;
      loaded.served.complete = true;
      this.saveServed();
    });
  }

  /**
   * Whether `bytes` more fit within the store's quota (given by the CLI that opened `served`), after evicting the
   * least recently used images this server does not serve; the reason to pause when they do not.
   */
  private async room(served: ServedImage, bytes: number): Promise<true | string> {
    const quota = served.quota;
    if (quota === undefined || this.store.used() + bytes <= quota) return true;
    if (bytes <= quota) {
      const evicted = await this.store.enforceQuota(quota - bytes, new Set(this.served.map((image) => image.name)));
      for (const image of evicted) log(`image ${image.name}: evicted for the background fetch of ${served.name} (quota ${quota} bytes)`);
      if (this.store.used() + bytes <= quota) return true;
    }
    log(`image ${served.name}: background fetch paused: the store's quota of ${quota} bytes is reached`);
    return `the store's quota of ${quota} bytes is reached`;
  }

  private statsOf(loaded: Loaded): ImageStats {
    return {
      name: loaded.served.name,
      manifest: loaded.served.manifest,
      layers: loaded.layers.map((layer) => ({ ...layer, stats: loaded.fetcher.layerStats(layer.digest) })),
      prefetch: { chunks: loaded.image.prefetch.length, bytes: loaded.image.prefetch.reduce((sum, chunk) => sum + chunk.size, 0) },
      ...(loaded.background ? { background: loaded.background.progress } : {}),
      updated: new Date().toISOString(),
    };
  }

  private async allStats(): Promise<ImageStats[]> {
    const result: ImageStats[] = [];
    for (const loaded of this.loaded.values()) result.push(this.statsOf(loaded));
    return result;
  }

  /** Statistics files, rewritten when they changed. */
  private async saveStats(): Promise<void> {
    for (const stats of await this.allStats()) {
      const { updated: _updated, ...comparable } = stats;
      const key = JSON.stringify(comparable);
      if (this.lastStats.get(stats.manifest) === key) continue;
      this.lastStats.set(stats.manifest, key);
      writeFileAtomic(join(this.paths.stats, `${imageFileName(stats.manifest)}.json`), JSON.stringify(stats, null, 2), 0o600, false);
    }
  }

  private tick(): void {
    void this.saveStats().catch(() => {});
    if (this.connections > 0 || this.nbd.connections > 0 || (this.loops = loopUsers(this.paths.mount, this.loops)).length > 0) {
      this.idleSince = Date.now();
      return;
    }
    if (Date.now() - this.idleSince >= this.idleMs) void this.stop('nothing uses it');
  }

  async stop(why: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    log(`stopping: ${why}`);
    unlinkSocket(this.paths.socket, this.socketInode);
    unlinkSocket(this.paths.nbd, this.nbdInode);
    this.nbd.close();
    for (const loaded of this.loaded.values()) {
      loaded.background?.stop();
      loaded.client.close();
    }
    await this.saveStats().catch(() => {});
    await unmount(this.paths.mount).catch(() => {});
    this.store.close();
    process.exit(0);
  }
}
