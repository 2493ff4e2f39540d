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

type Outcome = { stored: string } | { error: Error };

export class GrowingBlob {
  private path: string | undefined;
  private written = 0;
  private generation = 0;
  private outcome: Outcome | undefined;
  private waiters: Array<() => void> = [];

  /** The download (re)starts writing `path`, whose first `written` bytes are already there. */
  begin(path: string, written: number): void {
    this.path = path;
    this.written = written;
    this.generation++;
    this.notify();
  }

  grew(written: number): void {
    this.written = written;
    if (this.waiters.length > 0) this.notify();
  }

  /** The blob is verified and at `path`. */
  stored(path: string): void {
    this.outcome = { stored: path };
    this.notify();
  }

  failed(error: Error): void {
    this.outcome = { error };
    this.notify();
  }

  /** The blob's bytes from the start, as they are written; ends once the blob is verified and stored. */
  reader(chunkSize = 1024 * 1024): Readable {
    return Readable.from(this.follow(chunkSize), { objectMode: false });
  }

  private changed(): Promise<void> {
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
        const outcome = this.outcome;
        if (outcome && 'error' in outcome) throw outcome.error;
        if (this.generation !== generation && this.path !== undefined) {
          if (position > 0) throw new Error('its download started over while it was being unpacked');
          await handle?.close();
          handle = await open(this.path, 'r');
          generation = this.generation;
        } else if (!handle && outcome) {
          handle = await open(outcome.stored, 'r'); // stored by another process while this one waited for it
        }
        const end = outcome ? (await handle!.stat()).size : this.written;
        if (handle && position < end) {
          const chunk = Buffer.allocUnsafe(Math.min(chunkSize, end - position));
          const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
          if (this.generation !== generation) continue; // the partial file may have been truncated under the read
          if (bytesRead === 0) throw new Error(`its partial download is shorter (${position} bytes) than written`);
          position += bytesRead;
          yield chunk.subarray(0, bytesRead);
        } else if (outcome) {
          return;
        } else {
          await this.changed();
        }
      }
    } finally {
      await handle?.close();
    }
  }
}
