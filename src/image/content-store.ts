// The content store: blobs addressed by digest (DIR/blobs/ALG/HEX), each written to DIR/ingest/ALG-HEX.partial
// and renamed into place only once its bytes match the digest. A partial file is never used as content: a later
// pull re-hashes it, resumes after it, and verifies the whole before the rename. One download per blob: within
// a process by sharing the promise, across processes by a lock per blob. Pulls hold DIR/gc.lock shared and
// garbage collection holds it exclusive, so a collection never removes a blob a running pull just wrote.
import { createReadStream, closeSync, readSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Hash } from 'node:crypto';
import { checkDigest, digestHasher, parseDigest } from './digest.js';
import { FileLock, withLock } from '../host/file-lock.js';
import { GrowingBlob, type BlobUpdate } from './growing-blob.js';
import { DigestMismatchError, RegistryError } from '../errors/errors.js';

export interface RangeSource {
  /** The blob from byte `offset`; the result's `offset` is where the body really starts (0 if the range was ignored). */
  open(offset: number): Promise<{ body: Readable; offset: number }>;
}

export interface IngestOptions {
  /** The blob's size, from its descriptor: the download stops there. */
  size: number;
  onProgress?: (done: number) => void;
  /** Consecutive failed attempts tolerated without progress, and the wait before attempt n. */
  retries?: number;
  backoff?: (attempt: number) => Promise<void>;
}

function sameAsWritten(fd: number, data: Buffer, position: number): boolean {
  const existing = Buffer.allocUnsafe(data.length);
  return readSync(fd, existing, 0, data.length, position) === data.length && existing.equals(data);
}

export class ContentStore {
  private readonly inFlight = new Map<string, { done: Promise<void>; blob: GrowingBlob }>();
  /**
   * The sizes of the blobs the last `blobs()` found. A blob is put in place whole (renamed in, its digest checked)
   * and never changes after, so a digest listed again keeps its size: only blobs new since are stat'ed.
   */
  private listedSizes = new Map<string, number>();

  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'ingest'), { recursive: true, mode: 0o700 });
    mkdirSync(join(dir, 'blobs'), { recursive: true, mode: 0o700 });
  }

  get gcLockPath(): string {
    return join(this.dir, 'gc.lock');
  }

  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, 'blobs', algorithm, hex);
  }

  has(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  size(digest: string): number {
    return statSync(this.blobPath(digest)).size;
  }

  /** A stored blob's bytes, checked again against its digest (for the small JSON blobs read whole). */
  read(digest: string): Buffer {
    const data = readFileSync(this.blobPath(digest));
    const hash = digestHasher(digest).update(data);
    checkDigest(hash, digest);
    return data;
  }

  /** Stores bytes already in memory, if they match `digest`. */
  put(digest: string, data: Buffer): void {
    checkDigest(digestHasher(digest).update(data), digest);
    if (this.has(digest)) return;
    const { algorithm, hex } = parseDigest(digest);
    const partial = join(this.dir, 'ingest', `${algorithm}-${hex}.${process.pid}.put`);
    const fd = openSync(partial, 'w', 0o600);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.publish(partial, digest);
  }

  /** A file in ingest/ for content written outside `ingest` (the lazy loader's chunks), unique to the caller. */
  ingestPath(digest: string, suffix: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, 'ingest', `${algorithm}-${hex}.${process.pid}.${suffix}`);
  }

  /** Moves a file from `ingestPath`, whose bytes the caller verified against `digest`, into the store. */
  adopt(partial: string, digest: string): void {
    this.publish(partial, digest);
  }

  private publish(partial: string, digest: string): void {
    const target = this.blobPath(digest);
    mkdirSync(join(target, '..'), { recursive: true, mode: 0o700 });
    renameSync(partial, target);
  }

  /** Downloads `digest` from `source` into the store unless it is there; concurrent callers share one download. */
  ingest(digest: string, source: RangeSource, options: IngestOptions): Promise<void> {
    if (this.has(digest)) return Promise.resolve();
    let running = this.inFlight.get(digest);
    if (!running) {
      const blob = new GrowingBlob();
      const done = this.ingestLocked(digest, source, options, blob).then(
        () => blob.stored(this.blobPath(digest)),
        (error: Error) => {
          blob.failed(error);
          throw error;
        },
      );
      running = { done: done.finally(() => this.inFlight.delete(digest)), blob };
      this.inFlight.set(digest, running);
    }
    return running.done;
  }

  /**
   * Keeps `listener` told how a blob this process is downloading comes along (growing-blob.ts), or where the
   * stored blob is; false when the blob is neither.
   */
  watch(digest: string, listener: (update: BlobUpdate) => void): boolean {
    const running = this.inFlight.get(digest);
    if (running) running.blob.watch(listener);
    else if (this.has(digest)) listener({ kind: 'stored', path: this.blobPath(digest) });
    else return false;
    return true;
  }

  private async ingestLocked(digest: string, source: RangeSource, options: IngestOptions, blob: GrowingBlob): Promise<void> {
    const { algorithm, hex } = parseDigest(digest);
    const base = join(this.dir, 'ingest', `${algorithm}-${hex}`);
    await withLock(`${base}.lock`, 'ex', async () => {
      if (this.has(digest)) return;
      const partial = `${base}.partial`;
      try {
        await this.download(digest, partial, source, options, blob, true);
      } catch (error) {
        if (!(error instanceof DigestMismatchError)) throw error;
        // The partial bytes may have come from an earlier, interrupted download: start once more from nothing.
        await this.download(digest, partial, source, options, blob, false);
      }
      this.publish(partial, digest);
    });
  }

  private async download(digest: string, partial: string, source: RangeSource, options: IngestOptions, blob: GrowingBlob, resume: boolean): Promise<void> {
    const hash = digestHasher(digest);
    let offset = 0;
    let resumed = false;
    if (resume && existsSync(partial)) {
      for await (const chunk of createReadStream(partial)) {
        hash.update(chunk as Buffer);
        offset += (chunk as Buffer).length;
      }
      resumed = offset > 0;
    }
    const fd = openSync(partial, resumed ? 'r+' : 'w+', 0o600);
    blob.begin(partial, offset);
    try {
      if (offset > options.size) throw new DigestMismatchError(digest, 'a longer blob');
      await this.fill(fd, digest, hash, offset, source, options, blob);
      // Synchronous on purpose: fsyncs on the thread pool would hold up the gunzip and reads of the layer being
      // unpacked (the unpack worker shares the pool), which is the longer path.
      fsyncSync(fd);
    } catch (error) {
      if (error instanceof DigestMismatchError) rmSync(partial, { force: true });
      throw error;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Writes the body from `startOffset` on, resuming with Range requests. A source that ignores the range sends the
   * blob again from byte 0: the bytes already in the file are compared with it rather than rewritten, so each byte
   * of the file is written once (what growing-blob.ts relies on).
   */
  private async fill(fd: number, digest: string, startHash: Hash, startOffset: number, source: RangeSource, options: IngestOptions, blob: GrowingBlob): Promise<void> {
    let hash = startHash;
    let offset = startOffset;
    let written = startOffset;
    let failures = 0;
    // Requests since the last progress, for the message: each open may have been tried several times itself.
    let attempts = 0;
    const retries = options.retries ?? 4;
    options.onProgress?.(offset);
    for (;;) {
      if (offset === options.size) break;
      const before = written;
      let complete = false;
      try {
        const opened = await source.open(offset);
        if (opened.offset !== offset) {
          if (opened.offset !== 0) throw new RegistryError('protocol', `registry answered a range from ${opened.offset}, not ${offset}`);
          hash = digestHasher(digest);
          offset = 0;
        }
        for await (const chunk of opened.body) {
          const data = chunk as Buffer;
          if (offset + data.length > options.size) throw new DigestMismatchError(digest, `more than ${options.size} bytes`);
          const repeated = Math.max(0, Math.min(data.length, written - offset));
          if (repeated > 0 && !sameAsWritten(fd, data.subarray(0, repeated), offset)) {
            throw new DigestMismatchError(digest, `other bytes at offset ${offset} when the registry sent the blob again`);
          }
          if (repeated < data.length) writeSync(fd, data, repeated, data.length - repeated, offset + repeated);
          hash.update(data);
          offset += data.length;
          if (offset > written) {
            written = offset;
            blob.grew(written);
          }
          options.onProgress?.(offset);
        }
        complete = true;
      } catch (error) {
        if (error instanceof DigestMismatchError || (error instanceof RegistryError && !error.transient)) throw error;
        failures = written > before ? 1 : failures + 1;
        attempts = (written > before ? 0 : attempts) + (error instanceof RegistryError ? error.attempts : 1);
        if (failures > retries) throw (error instanceof RegistryError ? error : new RegistryError('unreachable', `download broke off: ${(error as Error).message}`, true)).tried(attempts);
        await (options.backoff?.(failures) ?? Promise.resolve());
        continue;
      }
      if (complete && offset >= options.size) break;
      // The body ended short of the size: resume from where it stopped.
      failures = written > before ? 1 : failures + 1;
      attempts = (written > before ? 0 : attempts) + 1;
      if (failures > retries) throw new RegistryError('unreachable', `download ended at ${offset} of ${options.size} bytes`, true).tried(attempts);
      await (options.backoff?.(failures) ?? Promise.resolve());
    }
    if (offset < written) throw new DigestMismatchError(digest, `a blob of ${offset} bytes sent after ${written} bytes of it`);
    checkDigest(hash, digest);
  }

  /** Every blob digest in the store with its size. */
  blobs(): { digest: string; size: number }[] {
    const result: { digest: string; size: number }[] = [];
    const sizes = new Map<string, number>();
    const root = join(this.dir, 'blobs');
    for (const algorithm of readdirSync(root)) {
      for (const hex of readdirSync(join(root, algorithm))) {
        const digest = `${algorithm}:${hex}`;
        const size = this.listedSizes.get(digest) ?? statSync(join(root, algorithm, hex)).size;
        sizes.set(digest, size);
        result.push({ digest, size });
      }
    }
    this.listedSizes = sizes;
    return result;
  }

  /** Removes blobs not in `keep` and partial downloads nobody is running; returns the bytes freed. */
  async collect(keep: Set<string>): Promise<number> {
    let freed = 0;
    for (const blob of this.blobs()) {
      if (keep.has(blob.digest)) continue;
      rmSync(this.blobPath(blob.digest), { force: true });
      freed += blob.size;
    }
    // Only under the exclusive gc lock: no pull is running, so every file here is left from an interrupted one.
    const ingest = join(this.dir, 'ingest');
    for (const name of readdirSync(ingest)) {
      const path = join(ingest, name);
      const lock = name.endsWith('.lock') ? FileLock.tryAcquire(path) : undefined;
      if (name.endsWith('.lock') && !lock) continue;
      try {
        freed += statSync(path).size;
        rmSync(path, { force: true });
      } finally {
        lock?.release();
      }
    }
    return freed;
  }
}
