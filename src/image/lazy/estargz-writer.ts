// Writing a layer as eStargz: a gzip tar any runtime pulls as usual, whose regular files each begin a gzip member
// (one per chunk of at most 4 MiB, or cut where the caller asks), the prioritised files first and then
// `.prefetch.landmark` (or `.no.prefetch.landmark` first when none is), the TOC as the last tar entry and the
// 51-byte footer after it: what upstream's `ctr-remote images convert --estargz` writes. Reads the layer from its
// uncompressed tar on disk, a chunk at a time.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { makeFooter } from './estargz-footer.js';
import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_NAME } from './estargz-toc.js';
import { encodeHeader, padding } from './tar-header.js';
import { indexTar, type TarEntry } from './tar-index.js';

export const CHUNK_SIZE = 4 * 1024 * 1024;

export interface EstargzOptions {
  /** Regular files (names in the layer) read first by the workload, in that order: before the landmark. */
  prioritized?: string[];
  /**
   * Large files read only in part: right after the landmark, cut into chunks at these byte ranges (so that the
   * ranges, and no more, can be prefetched).
   */
  ranges?: Map<string, Array<[number, number]>>;
  chunkSize?: number;
}

export interface WrittenLayer {
  digest: string;
  size: number;
  /** sha256 of the uncompressed stream: the image config's diff_id. */
  diffId: string;
  uncompressedSize: number;
  tocDigest: string;
  /** Of `ranges`, the chunks that hold them, as (name, chunkOffset) pairs. */
  rangeChunks: Array<[string, number]>;
}

interface TocJsonEntry {
  name: string;
  type: string;
  [key: string]: unknown;
}

function modtime(entry: TarEntry): string {
  return (entry.modtime ?? new Date(0).toISOString()).replace(/\.\d{3}Z$/, 'Z');
}

/** Chunk boundaries of a file of `size`: every `chunkSize`, and at the edges of `ranges` (64 KiB-aligned). */
function boundaries(size: number, chunkSize: number, ranges: Array<[number, number]> = []): number[] {
  const cuts = new Set<number>([0]);
  const align = 64 * 1024;
  for (const [from, to] of ranges) {
    cuts.add(Math.floor(from / align) * align);
    cuts.add(Math.min(size, Math.ceil(to / align) * align));
  }
  const sorted = [...cuts].filter((cut) => cut < size).sort((a, b) => a - b);
  const result: number[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const end = sorted[i + 1] ?? size;
    for (let at = sorted[i]!; at < end; at += chunkSize) result.push(at);
  }
  return result;
}

/** The order entries are written in: parents, hardlink targets and prioritised files first. */
function order(entries: TarEntry[], first: string[], second: string[]): { head: TarEntry[]; middle: TarEntry[]; tail: TarEntry[] } {
  const byName = new Map(entries.map((entry) => [entry.name, entry]));
  const emitted = new Set<TarEntry>();
  const pull = (name: string, into: TarEntry[]): void => {
    const entry = byName.get(name);
    if (!entry || emitted.has(entry)) return;
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = byName.get(parts.slice(0, i).join('/'));
      if (parent && parent.type === 'dir' && !emitted.has(parent)) {
        emitted.add(parent);
        into.push(parent);
      }
    }
    if (entry.type === 'hardlink' && entry.linkName) pull(entry.linkName.split('/').filter((p) => p && p !== '.').join('/'), into);
    emitted.add(entry);
    into.push(entry);
  };
  const head: TarEntry[] = [];
  const middle: TarEntry[] = [];
  for (const name of first) pull(name, head);
  for (const name of second) pull(name, middle);
  return { head, middle, tail: entries.filter((entry) => !emitted.has(entry)) };
}

/** Writes the layer whose uncompressed tar is at `tarPath` as eStargz to `out`. */
export function writeEstargz(tarPath: string, out: string, options: EstargzOptions = {}): WrittenLayer {
  const chunkSize = options.chunkSize ?? CHUNK_SIZE;
  // A layer that is eStargz already loses its old TOC and landmarks: they are written anew.
  const entries = indexTar(tarPath).filter((entry) => entry.name !== TOC_NAME && entry.name !== PREFETCH_LANDMARK && entry.name !== NO_PREFETCH_LANDMARK);
  const regular = (name: string): boolean => entries.some((entry) => entry.name === name && entry.type === 'reg');
  const prioritized = (options.prioritized ?? []).filter(regular);
  const partial = [...(options.ranges?.keys() ?? [])].filter((name) => regular(name) && !prioritized.includes(name));
  const { head, middle, tail } = order(entries, prioritized, partial);
  const input = openSync(tarPath, 'r');
  const output = openSync(out, 'w', 0o600);
  const compressed = createHash('sha256');
  const uncompressed = createHash('sha256');
  let position = 0;
  let uncompressedSize = 0;
  let pending: Buffer[] = [];
  const toc: TocJsonEntry[] = [];
  const rangeChunks: Array<[string, number]> = [];

  const flush = (): void => {
    if (pending.length === 0) return;
    const data = Buffer.concat(pending);
    pending = [];
    uncompressed.update(data);
    uncompressedSize += data.length;
    const member = gzipSync(data);
    compressed.update(member);
    writeSync(output, member, 0, member.length, position);
    position += member.length;
  };

  const regularFile = (name: string, size: number, read: (from: number, length: number) => Buffer, base: Record<string, unknown>, cuts: number[]): void => {
    const fileHash = createHash('sha256');
    const first: TocJsonEntry = { name, type: 'reg', size, ...base };
    toc.push(first);
    cuts.forEach((from, i) => {
      const to = cuts[i + 1] ?? size;
      flush();
      const data = read(from, to - from);
      fileHash.update(data);
      const chunk = { offset: position, chunkOffset: from, chunkSize: cuts.length > 1 ? to - from : undefined, chunkDigest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
      if (i === 0) Object.assign(first, { offset: chunk.offset, ...(chunk.chunkSize ? { chunkSize: chunk.chunkSize } : {}), chunkDigest: chunk.chunkDigest });
      else toc.push({ name, type: 'chunk', offset: chunk.offset, chunkOffset: from, chunkSize: to - from, chunkDigest: chunk.chunkDigest });
      pending.push(data);
      const ranges = options.ranges?.get(name);
      if (ranges?.some(([a, b]) => a < to && b > from)) rangeChunks.push([name, from]);
    });
    first.digest = `sha256:${fileHash.digest('hex')}`;
    pending.push(padding(size));
  };

  const landmark = (name: string): void => {
    pending.push(encodeHeader({ name, type: 'reg', size: 1, mode: 0, uid: 0, gid: 0, mtime: 0 }));
    regularFile(name, 1, () => Buffer.from([0x0f]), {}, [0]);
  };

  const entry = (e: TarEntry): void => {
    const base: Record<string, unknown> = {
      modtime: modtime(e), mode: e.mode, ...(e.uid ? { uid: e.uid } : {}), ...(e.gid ? { gid: e.gid } : {}),
      ...(e.xattrs ? { xattrs: Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [k, v.toString('base64')])) } : {}),
    };
    const tarName = e.type === 'dir' ? `${e.name || '.'}/` : e.name;
    pending.push(encodeHeader({ name: tarName, type: e.type, size: e.type === 'reg' ? e.size : 0, mode: e.mode, uid: e.uid, gid: e.gid, mtime: Date.parse(modtime(e)) / 1000, ...(e.linkName !== undefined ? { linkName: e.linkName } : {}), devMajor: e.devMajor, devMinor: e.devMinor, ...(e.xattrs ? { xattrs: e.xattrs } : {}) }));
    if (e.type === 'reg' && e.size > 0) {
      const read = (from: number, length: number): Buffer => {
        const data = Buffer.alloc(length);
        readSync(input, data, 0, length, e.dataOffset + from);
        return data;
      };
      regularFile(tarName, e.size, read, base, boundaries(e.size, chunkSize, options.ranges?.get(e.name)));
      return;
    }
    const json: TocJsonEntry = { name: tarName, type: e.type, ...base };
    if (e.type === 'reg') json.size = 0;
    if (e.linkName !== undefined) json.linkName = e.linkName;
    if (e.type === 'char' || e.type === 'block') Object.assign(json, { devMajor: e.devMajor, devMinor: e.devMinor });
    toc.push(json);
  };

  try {
    if (prioritized.length === 0) landmark(NO_PREFETCH_LANDMARK);
    head.forEach(entry);
    if (prioritized.length > 0) landmark(PREFETCH_LANDMARK);
    middle.forEach(entry);
    tail.forEach(entry);
    flush();
    const tocOffset = position;
    const json = Buffer.from(JSON.stringify({ version: 1, entries: toc }));
    pending.push(encodeHeader({ name: TOC_NAME, type: 'reg', size: json.length, mode: 0o644, uid: 0, gid: 0, mtime: 0 }), json, padding(json.length), Buffer.alloc(1024));
    flush();
    const footer = makeFooter(tocOffset);
    compressed.update(footer);
    writeSync(output, footer, 0, footer.length, position);
    position += footer.length;
    return {
      digest: `sha256:${compressed.digest('hex')}`,
      size: position,
      diffId: `sha256:${uncompressed.digest('hex')}`,
      uncompressedSize,
      tocDigest: `sha256:${createHash('sha256').update(json).digest('hex')}`,
      rangeChunks,
    };
  } finally {
    closeSync(input);
    closeSync(output);
  }
}
