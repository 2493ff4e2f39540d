// The fetch core of lazy loading: chunks of eStargz layers fetched with Range requests, decompressed, verified
// against their chunkDigest and put in the content store (by that digest, so every container of every image
// shares them) before a byte is served. One fetch per chunk however many readers wait for it; consecutive chunks
// go in one request; on-demand reads go before prefetch and background fetches; a chunk that cannot be had after
// the retries is an I/O error (EIO) for the reader, never a wait without end.
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ContentStore } from '../content-store.js';
import { withLock } from '../../host/file-lock.js';
import { decodeMembers, planMembers } from './member-decoder.js';
import type { Chunk } from './layer-index.js';
import { LazyReadError } from '../../errors/errors.js';

export type FetchKind = 'demand' | 'prefetch' | 'background';

/** Ranges of layer blobs from the registry (BlobFetcher.range). */
export interface RangeReader {
  range(digest: string, from: number, to?: number): Promise<{ body: Readable; offset: number }>;
}

export interface LayerStats {
  /** Compressed bytes fetched, by why. */
  fetched: Record<FetchKind, number>;
  requests: number;
  /** On-demand reads of chunks already local, and of chunks that had to be fetched (or waited for). */
  hits: number;
  misses: number;
  /** Of the on-demand reads that waited: their count, total and longest wait (ms). */
  waits: number;
  waitMs: number;
  maxWaitMs: number;
  /** Chunks refused because their bytes did not match their digest. */
  refused: number;
}

export function emptyStats(): LayerStats {
  return { fetched: { demand: 0, prefetch: 0, background: 0 }, requests: 0, hits: 0, misses: 0, waits: 0, waitMs: 0, maxWaitMs: 0, refused: 0 };
}

/** A read that could not be served: the filesystem answers EIO. */
export { LazyReadError };

export interface ChunkFetcherOptions {
  /** Attempts after the first for a chunk that failed (a broken or refused response, a bad digest). */
  retries?: number;
  backoff?: (attempt: number) => Promise<void>;
  /** Range requests at once. */
  parallel?: number;
  /** Longest span one request covers, in compressed bytes (prefetch and background). */
  maxSpan?: number;
  /**
   * How long, after a layer's chunk was given up on, other reads of that layer fail at once instead of being
   * retried again: the kernel reads a failed range page by page, and each would otherwise wait its retries.
   */
  failHoldMs?: number;
}

export class ChunkFetcher {
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly waiting: Array<{ demand: boolean; go: () => void }> = [];
  private running = 0;
  private demands = 0;
  private idleWaiters: Array<() => void> = [];
  readonly stats = new Map<string, LayerStats>();
  private readonly retries: number;
  private readonly parallel: number;
  private readonly givenUp = new Map<string, { until: number; message: string }>();
  readonly maxSpan: number;

  constructor(private readonly store: ContentStore, private readonly reader: RangeReader, private readonly options: ChunkFetcherOptions = {}) {
    this.retries = options.retries ?? 4;
    this.parallel = options.parallel ?? 4;
    this.maxSpan = options.maxSpan ?? 4 * 1024 * 1024;
  }

  layerStats(layer: string): LayerStats {
    let stats = this.stats.get(layer);
    if (!stats) this.stats.set(layer, (stats = emptyStats()));
    return stats;
  }

  has(chunk: Chunk): boolean {
    return this.store.has(chunk.digest);
  }

  /** On-demand reads waiting or being fetched. */
  get demandActive(): number {
    return this.demands;
  }

  /** Resolves once no on-demand read is waiting for the network. */
  idle(): Promise<void> {
    if (this.demands === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Bytes [from, from + length) of `chunk`, fetched first when not local. */
  async read(chunk: Chunk, from: number, length: number): Promise<Buffer> {
    await this.ensure([chunk], 'demand');
    const file = await open(this.store.blobPath(chunk.digest), 'r');
    try {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await file.read(buffer, 0, length, from);
      if (bytesRead !== length) throw new LazyReadError(`chunk ${chunk.digest} is shorter than it should be`);
      return buffer;
    } finally {
      await file.close();
    }
  }

  /** Makes every chunk local (sharing fetches already running); rejects with LazyReadError for one that cannot be. */
  async ensure(chunks: Chunk[], kind: FetchKind): Promise<void> {
    const waits: Promise<void>[] = [];
    const missing: Chunk[] = [];
    const seen = new Set<string>();
    for (const chunk of chunks) {
      if (seen.has(chunk.digest)) continue;
      seen.add(chunk.digest);
      const running = this.inFlight.get(chunk.digest);
      if (running) waits.push(running);
      else if (!this.store.has(chunk.digest)) missing.push(chunk);
    }
    if (kind === 'demand') {
      const stats = this.layerStats(chunks[0]!.layer);
      if (waits.length === 0 && missing.length === 0) {
        stats.hits++;
        return;
      }
      stats.misses++;
    }
    if (missing.length > 0) {
      const held = this.givenUp.get(missing[0]!.layer);
      if (held && held.until > Date.now()) throw new LazyReadError(held.message);
      const fetched = this.fetch(missing, kind);
      for (const chunk of missing) this.inFlight.set(chunk.digest, fetched.get(chunk.digest)!);
      waits.push(...fetched.values());
    }
    if (kind !== 'demand') {
      await Promise.all(waits);
      return;
    }
    const started = Date.now();
    this.demands++;
    try {
      await Promise.all(waits);
    } finally {
      this.demands--;
      if (this.demands === 0) for (const wake of this.idleWaiters.splice(0)) wake();
      const stats = this.layerStats(chunks[0]!.layer);
      const waited = Date.now() - started;
      stats.waits++;
      stats.waitMs += waited;
      stats.maxWaitMs = Math.max(stats.maxWaitMs, waited);
    }
  }

  /** Starts fetching `chunks`; one promise per chunk digest, settled when that chunk is stored or given up. */
  private fetch(chunks: Chunk[], kind: FetchKind): Map<string, Promise<void>> {
    const settle = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
    const promises = new Map<string, Promise<void>>();
    for (const chunk of chunks) {
      const promise = new Promise<void>((resolve, reject) => settle.set(chunk.digest, { resolve, reject }));
      promise.catch(() => {});
      promises.set(chunk.digest, promise.finally(() => this.inFlight.delete(chunk.digest)));
    }
    void this.fetchWithRetries(chunks, kind, settle);
    return promises;
  }

  private async fetchWithRetries(chunks: Chunk[], kind: FetchKind, settle: Map<string, { resolve: () => void; reject: (error: Error) => void }>): Promise<void> {
    let pending = chunks;
    let failures = 0;
    let lastError = '';
    while (pending.length > 0) {
      const left: Chunk[] = [];
      for (const span of spans(pending, kind === 'demand' ? 0 : this.maxSpan)) {
        const outcome = await this.fetchSpan(span, kind).catch((error: Error) => ({ stored: new Set<string>(), error: error.message }));
        for (const chunk of span) {
          if (outcome.stored.has(chunk.digest) || this.store.has(chunk.digest)) settle.get(chunk.digest)!.resolve();
          else left.push(chunk);
        }
        if (outcome.error) lastError = outcome.error;
      }
      if (left.length === 0) return;
      failures = left.length < pending.length ? 1 : failures + 1;
      pending = left;
      if (failures > this.retries) {
        const message = `chunk ${pending[0]!.digest} of layer ${pending[0]!.layer}: ${lastError} (tried ${failures} times)`;
        // Only a registry that cannot be reached holds the layer's other reads; a refused chunk is its own matter.
        if (!lastError.startsWith('refused:')) this.givenUp.set(pending[0]!.layer, { until: Date.now() + (this.options.failHoldMs ?? 5000), message });
        for (const chunk of pending) settle.get(chunk.digest)!.reject(new LazyReadError(`chunk ${chunk.digest} of layer ${chunk.layer}: ${lastError} (tried ${failures} times)`));
        return;
      }
      await (this.options.backoff?.(failures) ?? Promise.resolve());
    }
  }

  /** One Range request for consecutive chunks of one layer; which of them were stored, and the first error. */
  private async fetchSpan(span: Chunk[], kind: FetchKind): Promise<{ stored: Set<string>; error?: string }> {
    const release = await this.slot(kind === 'demand');
    const stored = new Set<string>();
    let error: string | undefined;
    try {
      const layer = span[0]!.layer;
      const stats = this.layerStats(layer);
      const from = span[0]!.memberStart;
      const to = span.at(-1)!.memberEnd - 1;
      await withLock(this.store.gcLockPath, 'sh', async () => {
        stats.requests++;
        const { body, offset } = await this.reader.range(layer, from, to);
        const tag = randomBytes(4).toString('hex');
        await decodeMembers(body, offset, planMembers(span), (chunk) => this.store.ingestPath(chunk.digest, `${tag}.chunk`), (outcome) => {
          if (outcome.path) {
            this.store.adopt(outcome.path, outcome.chunk.digest);
            stored.add(outcome.chunk.digest);
          } else {
            stats.refused++;
            error ??= `refused: ${outcome.error}`;
          }
        }, (bytes) => (stats.fetched[kind] += bytes));
      });
    } catch (failure) {
      error ??= (failure as Error).message;
    } finally {
      release();
    }
    if (!error && stored.size < new Set(span.map((c) => c.digest)).size) error = 'the registry\'s answer ended early';
    return error ? { stored, error } : { stored };
  }

  /** A request slot: on-demand reads go before everything else waiting. */
  private slot(demand: boolean): Promise<() => void> {
    const release = (): void => {
      this.running--;
      const next = this.waiting.findIndex((w) => w.demand);
      const [waiter] = this.waiting.splice(next >= 0 ? next : 0, 1);
      waiter?.go();
    };
    if (this.running < this.parallel) {
      this.running++;
      return Promise.resolve(release);
    }
    return new Promise((resolve) => this.waiting.push({ demand, go: () => {
      this.running++;
      resolve(release);
    } }));
  }
}

/** Chunks split into runs of one layer whose members follow one another, each at most `maxSpan` bytes (0: one member). */
export function spans(chunks: Chunk[], maxSpan: number): Chunk[][] {
  const sorted = [...chunks].sort((a, b) => (a.layer < b.layer ? -1 : a.layer > b.layer ? 1 : 0) || a.memberStart - b.memberStart || a.innerOffset - b.innerOffset);
  const result: Chunk[][] = [];
  for (const chunk of sorted) {
    const run = result.at(-1);
    const first = run?.[0];
    const last = run?.at(-1);
    const joins = run && last!.layer === chunk.layer && (last!.memberStart === chunk.memberStart || (last!.memberEnd === chunk.memberStart && chunk.memberEnd - first!.memberStart <= maxSpan));
    if (joins) run!.push(chunk);
    else result.push([chunk]);
  }
  return result;
}
