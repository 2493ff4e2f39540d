// The rest of a lazily loaded image, fetched in the background once the container runs: spans of chunks in blob
// order (the prioritised ones first), at most `bytesPerSecond` on average, and only while no on-demand read waits
// for the network, so that a reader never queues behind it. A chunk it cannot fetch is left for a reader to ask
// for again. Where the store has no room for the next span (its quota), the fetch pauses for good: the chunks
// left come on demand only.
import { setTimeout as sleep } from 'node:timers/promises';
import { spans, type ChunkFetcher } from './chunk-fetcher.js';
import type { Chunk } from './layer-index.js';

export interface BackgroundProgress {
  /** Compressed bytes of the chunks local so far, and of all of them. */
  done: number;
  total: number;
  failed: number;
  /** Why the fetch stopped before the end (the store's quota). */
  paused?: string;
}

export interface BackgroundOptions {
  onProgress?: (progress: BackgroundProgress) => void;
  /** Whether `bytes` more fit in the store; a reason when they do not. Asked before each span is fetched. */
  room?: (bytes: number) => Promise<true | string>;
}

function spanBytes(span: Chunk[]): number {
  return span.at(-1)!.memberEnd - span[0]!.memberStart;
}

export class BackgroundFetch {
  private stopped = false;
  readonly progress: BackgroundProgress = { done: 0, total: 0, failed: 0 };
  /** Settles once every chunk was tried (or `stop` was called). */
  readonly finished: Promise<void>;

  constructor(private readonly fetcher: ChunkFetcher, chunks: Chunk[], private readonly bytesPerSecond: number, private readonly options: BackgroundOptions = {}) {
    const all = spans(chunks, fetcher.maxSpan);
    this.progress.total = all.reduce((sum, span) => sum + spanBytes(span), 0);
    // A rate of 0: no background fetch, every chunk on demand.
    this.finished = bytesPerSecond > 0 ? this.run(all) : Promise.resolve();
  }

  stop(): void {
    this.stopped = true;
  }

  private async run(all: Chunk[][]): Promise<void> {
    const started = Date.now();
    let sent = 0;
    for (const span of all) {
      if (this.stopped) return;
      const missing = span.filter((chunk) => !this.fetcher.has(chunk));
      const bytes = spanBytes(span);
      if (missing.length > 0) {
        // Pace: what was sent so far may not have taken less than its share of time; readers go first.
        const due = started + (sent / this.bytesPerSecond) * 1000 - Date.now();
        if (due > 0) await sleep(due);
        await this.fetcher.idle();
        if (this.stopped) return;
        const room = await this.options.room?.(missing.reduce((sum, chunk) => sum + chunk.size, 0)) ?? true;
        if (room !== true) {
          this.progress.paused = room;
          this.options.onProgress?.(this.progress);
          return;
        }
        try {
          await this.fetcher.ensure(missing, 'background');
          sent += bytes;
        } catch {
          this.progress.failed++;
        }
      }
      this.progress.done += bytes;
      this.options.onProgress?.(this.progress);
    }
  }
}
