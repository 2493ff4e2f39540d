// A lazily loaded image as one EROFS filesystem image: its metadata built from the layers' TOCs (and the index of
// layers pulled whole), its file data read on first access from the chunks (fetched, verified and stored by the
// fetch core) or from the local uncompressed tar. The same bytes for the same image, whoever serves them: FUSE
// to the host kernel, NBD to a microVM.
import { open } from 'node:fs/promises';
import { buildErofs, type DataExtent, type ErofsImage } from '../../erofs/erofs-image.js';
import type { ContentStore } from '../content-store.js';
import type { ChunkFetcher } from './chunk-fetcher.js';
import { parseToc } from './estargz-toc.js';
import { chunksFor, indexLayer, type Chunk } from './layer-index.js';
import { fileChunks, mergeLayers, regularFiles, type FileData, type LayerEntries, type LazyNode } from './lazy-tree.js';
import { indexTar } from './tar-index.js';

/** How a layer of a lazily pulled image is had: its TOC (eStargz) or, pulled whole, its uncompressed tar by diff_id. */
export interface LazyLayerRecord {
  digest: string;
  size: number;
  diffId: string;
  toc?: { digest: string; offset: number };
  /** Chunks to prefetch besides those before the landmark, as (file name, chunkOffset): parts of large files. */
  prefetchChunks?: Array<[string, number]>;
}

/** What a workload read, file by file in the order it first read each, with the byte ranges read. */
export class AccessRecorder {
  private readonly files = new Map<string, { size: number; ranges: Array<[number, number]> }>();

  add(path: string, size: number, from: number, to: number): void {
    let file = this.files.get(path);
    if (!file) this.files.set(path, (file = { size, ranges: [] }));
    file.ranges.push([from, to]);
  }

  /** Paths in first-read order, and per path the merged ranges read and the file's size. */
  report(): Array<{ path: string; size: number; ranges: Array<[number, number]> }> {
    return [...this.files].map(([path, { size, ranges }]) => {
      const merged: Array<[number, number]> = [];
      for (const [from, to] of [...ranges].sort((a, b) => a[0] - b[0])) {
        const last = merged.at(-1);
        if (last && from <= last[1]) last[1] = Math.max(last[1], to);
        else merged.push([from, to]);
      }
      return { path, size, ranges: merged };
    });
  }
}

export class LazyImage {
  /** When set, every read of file data is recorded (image optimize). */
  recorder: AccessRecorder | undefined;
  private paths: Map<LazyNode, string> | undefined;
  private readonly root: LazyNode;

  readonly erofs: ErofsImage<FileData>;
  /** Chunks of the prioritised files (before each layer's `.prefetch.landmark`), in blob order. */
  readonly prefetch: Chunk[];
  /** Every chunk, the prioritised ones first, then in the image's data order. */
  readonly chunks: Chunk[];

  constructor(private readonly store: ContentStore, private readonly fetcher: ChunkFetcher, readonly manifest: string, layers: LazyLayerRecord[]) {
    const prioritised: Chunk[] = [];
    const entries = layers.map((layer): LayerEntries => {
      if (layer.toc) {
        const index = indexLayer(layer.digest, parseToc(store.read(layer.toc.digest)), layer.toc.offset);
        prioritised.push(...index.chunks.filter((chunk) => chunk.memberStart < index.prefetchEnd));
        for (const [name, offset] of layer.prefetchChunks ?? []) {
          const chunk = index.files.get(name.replace(/^\.?\/+/, ''))?.chunks.find((c) => c.fileOffset === offset);
          if (chunk) prioritised.push(chunk);
        }
        return { layer: layer.digest, entries: index.entries, data: (entry) => (index.files.has(entry.name) ? { kind: 'chunks', file: index.files.get(entry.name)! } : undefined) };
      }
      const tar = indexTar(store.blobPath(layer.diffId));
      return { layer: layer.digest, entries: tar, data: (entry) => ({ kind: 'local', blob: layer.diffId, offset: (entry as (typeof tar)[number]).dataOffset }) };
    });
    const root = mergeLayers(entries);
    this.root = root;
    const files = regularFiles(root);
    const byChunk = new Map<Chunk, LazyNode>();
    for (const file of files) for (const chunk of fileChunks(file)) byChunk.set(chunk, file);
    const first = [...new Set(prioritised.map((chunk) => byChunk.get(chunk)).filter((file): file is LazyNode => file !== undefined))];
    this.erofs = buildErofs(root, { uuid: Buffer.from(manifest.slice(-32), 'hex'), dataOrder: first });
    // Only chunks a file of the merged tree still uses: what upper layers hid is never fetched.
    this.prefetch = prioritised.filter((chunk) => byChunk.has(chunk));
    const seen = new Set(this.prefetch);
    this.chunks = [...this.prefetch, ...this.erofs.extents.flatMap((extent) => fileChunks(extent.node)).filter((chunk) => !seen.has(chunk))];
  }

  get size(): number {
    return this.erofs.size;
  }

  /** Image bytes [position, position + length), fetching what is not local; rejects with LazyReadError (EIO). */
  async read(position: number, length: number): Promise<Buffer> {
    const end = Math.min(position + length, this.erofs.size);
    if (end <= position) return Buffer.alloc(0);
    const out = Buffer.alloc(end - position);
    const meta = this.erofs.meta;
    if (position < meta.length) meta.copy(out, 0, position, Math.min(end, meta.length));
    const reads: Promise<void>[] = [];
    for (const extent of this.overlapping(position, end)) {
      const from = Math.max(position, extent.start);
      const to = Math.min(end, extent.start + extent.size);
      if (this.recorder) this.recorder.add(this.pathOf(extent.node), extent.size, from - extent.start, to - extent.start);
      reads.push(this.readFile(extent, from - extent.start, to - from).then((bytes) => void bytes.copy(out, from - position)));
    }
    await Promise.all(reads);
    return out;
  }

  private pathOf(node: LazyNode): string {
    if (!this.paths) {
      const paths = new Map<LazyNode, string>();
      const walk = (dir: LazyNode, prefix: string): void => {
        for (const [name, child] of dir.children!) {
          const path = `${prefix}${name}`;
          if (child.type === 'dir') walk(child, `${path}/`);
          else if (!paths.has(child)) paths.set(child, path);
        }
      };
      walk(this.root, '');
      this.paths = paths;
    }
    return this.paths.get(node) ?? '';
  }

  private overlapping(position: number, end: number): DataExtent<FileData>[] {
    const extents = this.erofs.extents;
    let low = 0;
    let high = extents.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      const extent = extents[mid]!;
      if (extent.start + extent.size <= position) low = mid + 1;
      else high = mid;
    }
    const result: DataExtent<FileData>[] = [];
    for (let i = low; i < extents.length && extents[i]!.start < end; i++) result.push(extents[i]!);
    return result;
  }

  private async readFile(extent: DataExtent<FileData>, offset: number, length: number): Promise<Buffer> {
    const data = extent.node.data!;
    if (data.kind === 'local') {
      const file = await open(this.store.blobPath(data.blob), 'r');
      try {
        const buffer = Buffer.alloc(length);
        await file.read(buffer, 0, length, data.offset + offset);
        return buffer;
      } finally {
        await file.close();
      }
    }
    const parts = await Promise.all(chunksFor(data.file, offset, length).map((chunk) => {
      const from = Math.max(offset, chunk.fileOffset);
      const to = Math.min(offset + length, chunk.fileOffset + chunk.size);
      return this.fetcher.read(chunk, from - chunk.fileOffset, to - from);
    }));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}
