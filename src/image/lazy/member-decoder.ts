// The gzip members of one byte range of an eStargz blob, decompressed one after the other as the bytes arrive,
// each chunk they hold written to its own file and hashed on the way: memory stays at a few buffers whatever the
// chunk sizes. A chunk is reported only once its bytes hash to its chunkDigest.
import { createHash } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Chunk } from './layer-index.js';

export interface MemberPlan {
  start: number;
  end: number;
  /** The chunks wanted from it, by innerOffset. */
  chunks: Chunk[];
}

export interface ChunkOutcome {
  chunk: Chunk;
  /** The verified chunk's file, when it was. */
  path?: string;
  error?: string;
}

/** Groups chunks (of one layer, in blob order) by the member that holds them. */
export function planMembers(chunks: Chunk[]): MemberPlan[] {
  const plans: MemberPlan[] = [];
  for (const chunk of chunks) {
    const last = plans.at(-1);
    if (last && last.start === chunk.memberStart) last.chunks.push(chunk);
    else plans.push({ start: chunk.memberStart, end: chunk.memberEnd, chunks: [chunk] });
  }
  return plans;
}

interface Sink {
  chunk: Chunk;
  path: string;
  fd: number;
  written: number;
  hash: ReturnType<typeof createHash>;
}

/**
 * Reads `body` (the blob from `bodyOffset`) through the members of `plans`, which must be consecutive or rising,
 * and calls `done` for each chunk as soon as its member is decompressed. `partialPath` names a chunk's file.
 * Stops at the last member's end; a body that ends early leaves the rest unreported (the caller retries them).
 * `used` is told how many bytes of the body fell within the members.
 */
export async function decodeMembers(body: Readable, bodyOffset: number, plans: MemberPlan[], partialPath: (chunk: Chunk) => string, done: (outcome: ChunkOutcome) => void, used: (bytes: number) => void = () => {}): Promise<void> {
  let position = bodyOffset;
  let index = 0;
  let member: { plan: MemberPlan; gunzip: ReturnType<typeof createGunzip>; finished: Promise<void>; sinks: Sink[]; failed: Error | undefined } | undefined;

  const open = (plan: MemberPlan): NonNullable<typeof member> => {
    const gunzip = createGunzip();
    const sinks = plan.chunks.map((chunk): Sink => {
      const path = partialPath(chunk);
      return { chunk, path, fd: openSync(path, 'w', 0o600), written: 0, hash: createHash('sha256') };
    });
    let out = 0;
    gunzip.on('data', (data: Buffer) => {
      const from = out;
      out += data.length;
      for (const sink of sinks) {
        const start = Math.max(from, sink.chunk.innerOffset + sink.written);
        const end = Math.min(out, sink.chunk.innerOffset + sink.chunk.size);
        if (start >= end) continue;
        const piece = data.subarray(start - from, end - from);
        writeSync(sink.fd, piece, 0, piece.length, sink.written);
        sink.hash.update(piece);
        sink.written += piece.length;
      }
    });
    const current = { plan, gunzip, finished: Promise.resolve(), sinks, failed: undefined as Error | undefined };
    current.finished = new Promise<void>((resolve, reject) => {
      gunzip.on('end', resolve);
      gunzip.on('error', (error) => {
        current.failed = error;
        reject(error);
      });
    });
    // Awaited in `close`; a corrupt member fails it early, and its remaining bytes are skipped.
    current.finished.catch(() => {});
    return current;
  };

  const close = async (current: NonNullable<typeof member>): Promise<void> => {
    if (!current.failed) current.gunzip.end();
    let failure: string | undefined;
    try {
      await current.finished;
    } catch (error) {
      failure = `its gzip member does not decompress: ${(error as Error).message}`;
    }
    for (const sink of current.sinks) {
      closeSync(sink.fd);
      const digest = `sha256:${sink.hash.digest('hex')}`;
      const error = failure ?? (sink.written !== sink.chunk.size ? `${sink.written} of its ${sink.chunk.size} bytes in its member` : digest !== sink.chunk.digest ? `its bytes hash to ${digest}, not ${sink.chunk.digest}` : undefined);
      if (error) {
        rmSync(sink.path, { force: true });
        done({ chunk: sink.chunk, error });
      } else done({ chunk: sink.chunk, path: sink.path });
    }
  };

  const abandon = (current: NonNullable<typeof member>): void => {
    current.gunzip.destroy();
    for (const sink of current.sinks) {
      closeSync(sink.fd);
      rmSync(sink.path, { force: true });
    }
  };

  try {
    for await (const piece of body as AsyncIterable<Buffer>) {
      let cursor = 0;
      while (cursor < piece.length && index < plans.length) {
        const plan = plans[index]!;
        const at = position + cursor;
        if (at < plan.start) {
          cursor += Math.min(piece.length - cursor, plan.start - at);
          continue;
        }
        member ??= open(plan);
        const take = Math.min(piece.length - cursor, plan.end - at);
        used(take);
        if (!member.failed && !member.gunzip.write(piece.subarray(cursor, cursor + take))) {
          const writing = member;
          await Promise.race([new Promise((resolve) => writing.gunzip.once('drain', resolve)), writing.finished.catch(() => {})]);
        }
        cursor += take;
        if (at + take === plan.end) {
          const current = member;
          member = undefined;
          index++;
          await close(current);
        }
      }
      position += piece.length;
      if (index >= plans.length) break;
    }
  } finally {
    if (member) abandon(member);
    body.destroy();
  }
}
