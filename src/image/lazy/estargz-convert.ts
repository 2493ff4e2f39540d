// An image rewritten with eStargz layers (runbox image convert --estargz, and optimize after its recording run):
// each layer of the source, pulled whole, is written again by estargz-writer.ts, the config's diff_ids follow,
// and a new OCI manifest annotates every layer with its TOC digest and uncompressed size (and, beyond upstream,
// the chunks of partly read files to prefetch). The result is stored and pushed as the target reference.
import { digestOf } from '../digest.js';
import type { Descriptor, ImageRecord } from '../image-index.js';
import type { ImageStore } from '../image-store.js';
import { MediaType } from '../media-types.js';
import { PREFETCH_CHUNKS_ANNOTATION, TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION } from './estargz-toc.js';
import { writeEstargz, type EstargzOptions } from './estargz-writer.js';
import { storeUncompressed } from './lazy-pull.js';
import { indexTar } from './tar-index.js';

export interface Workload {
  /** Paths in the image (no leading slash) in the order the workload first read them. */
  files: string[];
  /** Large files read only in part: the byte ranges read. */
  ranges: Map<string, Array<[number, number]>>;
}

/** The source image with every blob local (an image pulled lazily is pulled again, whole). */
async function wholeImage(store: ImageStore, source: string): Promise<ImageRecord> {
  const found = store.find(source);
  if (found && !found.lazy) return found;
  return store.pullOnly(found?.name ?? source);
}

/** Converts `source` to eStargz as `target` (stored, and pushed unless `push` is false). */
export async function convertToEstargz(store: ImageStore, source: string, target: string, workload?: Workload, push = true): Promise<ImageRecord> {
  return store.using(async () => {
    const image = await wholeImage(store, source);
    const content = store.content;
    const config = JSON.parse(content.read(image.config.digest).toString('utf8')) as { rootfs: { diff_ids: string[] }; history?: unknown[] };
    const diffIds = config.rootfs.diff_ids;
    // Each path read is prioritised in the topmost layer that holds it.
    const owners = new Map<string, number>();
    const layerNames: Array<Set<string>> = [];
    for (const [i, layer] of image.layers.entries()) {
      await storeUncompressed(content, layer, diffIds[i]!);
      const names = new Set(indexTar(content.blobPath(diffIds[i]!)).filter((entry) => entry.type === 'reg').map((entry) => entry.name));
      layerNames.push(names);
      for (const name of names) owners.set(name, i);
    }
    const layers: Descriptor[] = [];
    const newDiffIds: string[] = [];
    for (const [i, layer] of image.layers.entries()) {
      const mine = (name: string): boolean => owners.get(name) === i;
      const options: EstargzOptions = workload
        ? { prioritized: workload.files.filter((name) => mine(name) && !workload.ranges.has(name)), ranges: new Map([...workload.ranges].filter(([name]) => mine(name))) }
        : {};
      const partial = content.ingestPath(layer.digest, 'estargz');
      const written = writeEstargz(content.blobPath(diffIds[i]!), partial, options);
      content.adopt(partial, written.digest);
      newDiffIds.push(written.diffId);
      layers.push({
        mediaType: MediaType.ociLayerGzip,
        digest: written.digest,
        size: written.size,
        annotations: {
          [TOC_DIGEST_ANNOTATION]: written.tocDigest,
          [UNCOMPRESSED_SIZE_ANNOTATION]: String(written.uncompressedSize),
          ...(written.rangeChunks.length ? { [PREFETCH_CHUNKS_ANNOTATION]: JSON.stringify(written.rangeChunks) } : {}),
        },
      });
    }
    const configBytes = Buffer.from(JSON.stringify({ ...config, rootfs: { ...config.rootfs, diff_ids: newDiffIds } }));
    const configDescriptor: Descriptor = { mediaType: MediaType.ociConfig, digest: digestOf(configBytes), size: configBytes.length };
    content.put(configDescriptor.digest, configBytes);
    const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDescriptor, layers }));
    const manifestDigest = digestOf(manifestBytes);
    content.put(manifestDigest, manifestBytes);
    if (push) {
      await store.push(target, { mediaType: MediaType.ociManifest, bytes: manifestBytes }, [
        { digest: configDescriptor.digest, bytes: configBytes },
        ...layers.map((layer) => ({ digest: layer.digest, path: content.blobPath(layer.digest) })),
      ]);
    }
    return store.record(target, { digest: manifestDigest, manifest: manifestDigest, config: configDescriptor, layers, platform: image.platform });
  });
}
