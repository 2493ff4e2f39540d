// The chunks lazily pulled images need: garbage collection keeps them with the images' other blobs (and frees
// them with the last image that needs them).
import type { ContentStore } from '../content-store.js';
import type { ImageRecord } from '../image-index.js';
import { parseToc } from './estargz-toc.js';

export function lazyChunkDigests(store: ContentStore, records: ImageRecord[], into: Set<string>): Set<string> {
  for (const record of records) {
    for (const layer of record.lazy ?? []) {
      if (!layer.toc || !store.has(layer.toc.digest)) continue;
      for (const entry of parseToc(store.read(layer.toc.digest)).entries) if (entry.chunkDigest) into.add(entry.chunkDigest);
    }
  }
  return into;
}
