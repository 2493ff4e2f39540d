// The layers of a lazy pull: an eStargz layer contributes its TOC only (its chunks come later, on demand and in
// the background); any other layer is pulled whole, as a normal pull would, and kept uncompressed (checked
// against its diff_id) so that its files can be served from the same filesystem image.
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import type { ContentStore } from '../content-store.js';
import { DigestMismatchError } from '../../errors/errors.js';
import type { Descriptor } from '../image-index.js';
import { openTarStream } from '../unpack-decompress.js';
import type { RangeReader } from './chunk-fetcher.js';
import { fetchLayerToc } from './layer-toc-fetch.js';
import { PREFETCH_CHUNKS_ANNOTATION } from './estargz-toc.js';
import type { LazyLayerRecord } from './lazy-image.js';

/** A stored layer blob, decompressed into the store under its diff_id (unless there already). */
export async function storeUncompressed(store: ContentStore, layer: Descriptor, diffId: string): Promise<void> {
  if (store.has(diffId)) return;
  const partial = store.ingestPath(diffId, 'tar');
  const hash = createHash('sha256');
  try {
    const { tar, finished } = await openTarStream(createReadStream(store.blobPath(layer.digest)), layer.mediaType);
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    await Promise.all([pipeline(tar, hashing, createWriteStream(partial, { mode: 0o600 })), finished]);
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== diffId) throw new DigestMismatchError(diffId, actual);
    store.adopt(partial, diffId);
  } finally {
    rmSync(partial, { force: true });
  }
}

/**
 * What a lazy pull keeps of each layer: its TOC when it is eStargz, else the whole layer (`pullWhole` stores the
 * blob as a normal pull does) uncompressed.
 */
export async function pullLayerLazily(reader: RangeReader, store: ContentStore, layer: Descriptor, diffId: string, pullWhole: (layer: Descriptor) => Promise<void>): Promise<LazyLayerRecord> {
  const toc = await fetchLayerToc(reader, store, layer);
  if (toc) {
    let prefetchChunks: Array<[string, number]> | undefined;
    try {
      const listed = JSON.parse(layer.annotations?.[PREFETCH_CHUNKS_ANNOTATION] ?? 'null') as unknown;
      if (Array.isArray(listed) && listed.every((item) => Array.isArray(item) && typeof item[0] === 'string' && Number.isSafeInteger(item[1]))) prefetchChunks = listed as Array<[string, number]>;
    } catch {
      // Not runbox's: ignored, as upstream ignores it.
    }
    return { digest: layer.digest, size: layer.size, diffId, toc: { digest: toc.tocDigest, offset: toc.tocOffset }, ...(prefetchChunks ? { prefetchChunks } : {}) };
  }
  await pullWhole(layer);
  await storeUncompressed(store, layer, diffId);
  return { digest: layer.digest, size: layer.size, diffId };
}
