// Finding a layer's TOC with one tail Range request: the footer gives the TOC's offset, and the TOC usually lies
// within the tail fetched with it (else one more request brings the rest). The TOC is checked against the
// layer's `containerd.io/snapshot/stargz/toc.digest` annotation and kept in the content store under that
// digest, so it is fetched once per store.
import type { Readable } from 'node:stream';
import type { ContentStore } from '../content-store.js';
import type { Descriptor } from '../image-index.js';
import { parseFooter, FOOTER_SIZE } from './estargz-footer.js';
import { parseToc, tocFromMember, TOC_DIGEST_ANNOTATION, TocError } from './estargz-toc.js';
import type { RangeReader } from './chunk-fetcher.js';
import { indexLayer, type LayerIndex } from './layer-index.js';

/** How much of a layer's end the first request asks for: the footer and, as a rule, the whole TOC. */
export const TAIL_BYTES = 64 * 1024;

/** What lazy loading needs to know of an eStargz layer, kept in the image's lazy record. */
export interface EstargzLayer {
  digest: string;
  tocDigest: string;
  tocOffset: number;
}

/** Bytes [from, to) of a body that starts at `offset`, read whole (the caller bounds the span). */
async function collect(body: Readable, offset: number, from: number, to: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let position = offset;
  for await (const data of body as AsyncIterable<Buffer>) {
    const start = Math.max(position, from);
    const end = Math.min(position + data.length, to);
    if (end > start) parts.push(data.subarray(start - position, end - position));
    position += data.length;
    if (position >= to) break;
  }
  body.destroy();
  const bytes = Buffer.concat(parts);
  if (bytes.length !== to - from) throw new TocError(`the registry sent ${bytes.length} of bytes ${from}-${to - 1}`);
  return bytes;
}

async function fetchBytes(reader: RangeReader, digest: string, from: number, to: number): Promise<Buffer> {
  const { body, offset } = await reader.range(digest, from, to - 1);
  return collect(body, offset, from, to);
}

/**
 * The layer's TOC location, fetching and storing its TOC unless the store has it; undefined when the layer is not
 * eStargz (no TOC digest annotation, or no eStargz footer): it is then pulled whole. A TOC that does not match
 * its annotation is an error.
 */
export async function fetchLayerToc(reader: RangeReader, store: ContentStore, layer: Descriptor): Promise<EstargzLayer | undefined> {
  const tocDigest = layer.annotations?.[TOC_DIGEST_ANNOTATION];
  if (!tocDigest || !/^sha256:[0-9a-f]{64}$/.test(tocDigest) || layer.size < FOOTER_SIZE) return undefined;
  const tailStart = Math.max(0, layer.size - TAIL_BYTES);
  const tail = await fetchBytes(reader, layer.digest, tailStart, layer.size);
  const footer = parseFooter(tail);
  if (!footer) return undefined;
  const tocEnd = layer.size - footer.footerSize;
  if (footer.tocOffset >= tocEnd) throw new TocError(`layer ${layer.digest}: the footer puts the TOC at ${footer.tocOffset}, past its end`);
  if (!store.has(tocDigest)) {
    const head = footer.tocOffset < tailStart ? await fetchBytes(reader, layer.digest, footer.tocOffset, tailStart) : Buffer.alloc(0);
    const member = Buffer.concat([head, tail.subarray(Math.max(0, footer.tocOffset - tailStart), tocEnd - tailStart)]);
    const json = tocFromMember(member, tocDigest);
    parseToc(json);
    store.put(tocDigest, json);
  }
  return { digest: layer.digest, tocDigest, tocOffset: footer.tocOffset };
}

/** The index of a layer whose TOC is in the store (checked against its digest again as it is read). */
export function loadLayerIndex(store: ContentStore, layer: EstargzLayer): LayerIndex {
  return indexLayer(layer.digest, parseToc(store.read(layer.tocDigest)), layer.tocOffset);
}
