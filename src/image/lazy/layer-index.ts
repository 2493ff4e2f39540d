// Where a lazily loaded layer's file bytes are: its TOC turned into files made of chunks, each chunk in one gzip
// member of the blob ([memberStart, memberEnd)), `innerOffset` bytes into what that member decompresses to.
import { PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK, TocError, type Toc, type TocEntry } from './estargz-toc.js';

export interface Chunk {
  /** sha256 of the chunk's uncompressed bytes: how it is verified, and its name in the content store. */
  digest: string;
  /** The layer blob it is read from. */
  layer: string;
  fileOffset: number;
  size: number;
  memberStart: number;
  memberEnd: number;
  innerOffset: number;
}

export interface LayerFile {
  entry: TocEntry;
  chunks: Chunk[];
}

export interface LayerIndex {
  layer: string;
  /** Every entry but the chunk continuations and the landmarks, in the TOC's order. */
  entries: TocEntry[];
  /** Regular files with data, by name. */
  files: Map<string, LayerFile>;
  /** Every chunk, in blob order. */
  chunks: Chunk[];
  /** Where the prioritised files end in the blob (the `.prefetch.landmark` member's start); 0 when none. */
  prefetchEnd: number;
}

/**
 * The index of layer `layer` from its TOC. `tocOffset` bounds the last member. Chunks must tile each file from 0
 * to its size, and lie before the TOC: anything else is refused.
 */
export function indexLayer(layer: string, toc: Toc, tocOffset: number): LayerIndex {
  const entries: TocEntry[] = [];
  const files = new Map<string, LayerFile>();
  const chunks: Chunk[] = [];
  let prefetchEnd = 0;
  let current: LayerFile | undefined;
  for (const entry of toc.entries) {
    if (entry.type === 'chunk') {
      if (!current || current.entry.name !== entry.name) throw new TocError(`chunk of "${entry.name}" does not follow its file`);
      addChunk(current, entry);
      continue;
    }
    current = undefined;
    if (entry.name === PREFETCH_LANDMARK || entry.name === NO_PREFETCH_LANDMARK) {
      if (entry.name === PREFETCH_LANDMARK) prefetchEnd = entry.offset;
      continue;
    }
    entries.push(entry);
    if (entry.type === 'reg' && entry.size > 0) {
      if (files.has(entry.name)) throw new TocError(`file "${entry.name}" is twice in the TOC`);
      current = { entry, chunks: [] };
      files.set(entry.name, current);
      addChunk(current, entry);
    }
  }
  for (const file of files.values()) {
    const last = file.chunks.at(-1)!;
    if (last.fileOffset + last.size !== file.entry.size) throw new TocError(`file "${file.entry.name}": its chunks end at ${last.fileOffset + last.size}, not at its size ${file.entry.size}`);
    chunks.push(...file.chunks);
  }
  chunks.sort((a, b) => a.memberStart - b.memberStart || a.innerOffset - b.innerOffset);
  // A member ends where the next one (or the TOC) begins.
  const starts = [...new Set(chunks.map((chunk) => chunk.memberStart)), tocOffset].sort((a, b) => a - b);
  let next = 0;
  for (const chunk of chunks) {
    if (chunk.memberStart >= tocOffset) throw new TocError(`file "${nameOf(files, chunk)}": its data is not before the TOC`);
    while (starts[next]! <= chunk.memberStart) next++;
    chunk.memberEnd = starts[next]!;
  }
  return { layer, entries, files, chunks, prefetchEnd };

  function addChunk(file: LayerFile, entry: TocEntry): void {
    const previous = file.chunks.at(-1);
    const expected = previous ? previous.fileOffset + previous.size : 0;
    if (entry.chunkOffset !== expected) throw new TocError(`file "${file.entry.name}": a chunk at ${entry.chunkOffset}, expected ${expected}`);
    const size = entry.chunkSize || file.entry.size - entry.chunkOffset;
    if (size <= 0 || entry.chunkOffset + size > file.entry.size) throw new TocError(`file "${file.entry.name}": a chunk past its end`);
    if (!entry.chunkDigest) throw new TocError(`file "${file.entry.name}": a chunk without a chunkDigest`);
    file.chunks.push({ digest: entry.chunkDigest, layer, fileOffset: entry.chunkOffset, size, memberStart: entry.offset, memberEnd: 0, innerOffset: entry.innerOffset });
  }
}

function nameOf(files: Map<string, LayerFile>, chunk: Chunk): string {
  for (const file of files.values()) if (file.chunks.includes(chunk)) return file.entry.name;
  return '?';
}

/** The chunks of `file` that hold bytes [offset, offset + length). */
export function chunksFor(file: LayerFile, offset: number, length: number): Chunk[] {
  const end = offset + length;
  return file.chunks.filter((chunk) => chunk.fileOffset < end && chunk.fileOffset + chunk.size > offset);
}
