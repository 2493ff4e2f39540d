// A blob while the content store downloads it, and a reader that follows its partial file as it grows, so that a
// layer can be unpacked while it is still arriving. The reader ends only once the store has checked the whole
// blob against its digest and published it, so a consumer sees the end of the stream only for verified bytes;
// if the download fails, or starts over after the reader has taken bytes, the reader fails instead.
//
// Why the bytes read are the bytes verified: within one generation (one run of writing the partial file from a
// known prefix) the store writes each byte once, in order, and hashes exactly what it writes; a new generation
// (a download that restarts from zero) is announced with `begin` before any byte of it is written.
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';

/** What happens to a blob while it is downloaded: a GrowingBlob in another thread is kept up to date with these. */
export type BlobUpdate =
  | { kind: 'begin'; path: string; written: number }
  | { kind: 'grew'; written: number }
  | { kind: 'stored'; path: string }
  | { kind: 'failed'; message: string };

type Outcome = { stored: string } | { error: Error };

export class GrowingBlob {
  private path: string | undefined;
  private written = 0;
  private generation = 0;
  private outcome: Outcome | undefined;
  /** Counts the updates applied, so that a reader can tell whether one came while it was busy. */
  private version = 0;
  private waiters: Array<() => void> = [];
  private readonly listeners: Array<(update: BlobUpdate) => void> = [];

  /** The download (re)starts writing `path`, whose first `written` bytes are already there. */
  begin(path: string, written: number): void {
    this.apply({ kind: 'begin', path, written });
  }

  grew(written: number): void {
    this.apply({ kind: 'grew', written });
  }

  /** The blob is verified and at `path`. */
  stored(path: string): void {
    this.apply({ kind: 'stored', path });
  }

  failed(error: Error): void {
    this.apply({ kind: 'failed', message: error.message });
  }

  /** Applies an update; once the blob is stored or has failed, later ones are ignored. */
  apply(update: BlobUpdate): void {
    if (this.outcome) return;
    this.version++;
    switch (update.kind) {
      case 'begin':
        this.path = update.path;
        this.written = update.written;
        this.generation++;
        break;
      case 'grew':
        this.written = update.written;
        break;
      case 'stored':
        this.outcome = { stored: update.path };
        break;
      case 'failed':
        this.outcome = { error: new Error(update.message) };
        break;
    }
    for (const listener of this.listeners) listener(update);
    if (this.waiters.length > 0) this.notify();
  }

  /** Hears the updates that bring a copy up to date with this blob, then every later one. */
  watch(listener: (update: BlobUpdate) => void): void {
    if (this.path !== undefined) listener({ kind: 'begin', path: this.path, written: this.written });
    if (this.outcome) listener('error' in this.outcome ? { kind: 'failed', message: this.outcome.error.message } : { kind: 'stored', path: this.outcome.stored });
    this.listeners.push(listener);
  }

  /** The blob's bytes from the start, as they are written; ends once the blob is verified and stored. */
  reader(chunkSize = 1024 * 1024): Readable {
    return Readable.from(this.follow(chunkSize), { objectMode: false });
  }

  /** Resolves once an update newer than `version` is applied (at once if one already was). */
  private changedSince(version: number): Promise<void> {
    if (this.version !== version) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  private async *follow(chunkSize: number): AsyncGenerator<Buffer> {
    let handle: FileHandle | undefined;
    let generation = 0;
    let position = 0;
    try {
      for (;;) {
        const seen = this.version;
        const outcome = this.outcome;
        if (outcome && 'error' in outcome) throw outcome.error;
        if (this.generation !== generation && position > 0) throw new Error('its download started over while it was being unpacked');
        if (handle && this.generation !== generation) {
          await handle.close(); // the download started over before anything was read: read the new file
          handle = undefined;
        }
        if (!handle) {
          const path = outcome ? outcome.stored : this.path;
          if (path === undefined) {
            await this.changedSince(seen);
            continue;
          }
          generation = this.generation;
          try {
            handle = await open(path, 'r');
          } catch (error) {
            // The partial file was published (or dropped) after this reader heard of it: the update is on its way.
            if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || outcome) throw error;
            await this.changedSince(seen);
            continue;
          }
        }
        const end = outcome ? (await handle.stat()).size : this.written;
        if (position < end) {
          const chunk = Buffer.allocUnsafe(Math.min(chunkSize, end - position));
          const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
          if (this.generation !== generation) continue; // the partial file may have been truncated under the read
          if (bytesRead === 0) throw new Error(`its partial download is shorter (${position} bytes) than written`);
          position += bytesRead;
          yield chunk.subarray(0, bytesRead);
        } else if (outcome) {
          return;
        } else {
          await this.changedSince(seen);
        }
      }
    } finally {
      await handle?.close();
    }
  }
}
