// Pulling an image into the content store: resolve the reference (through an index to the platform's manifest),
// then fetch the config and the layers, every one verified against its digest, and record the image.
import { formatReference, manifestReference, parseReference, type ImageReference } from './reference.js';
import { BlobFetcher } from './blob-fetcher.js';
import type { ContentStore } from './content-store.js';
import { withLock } from '../host/file-lock.js';
import type { Descriptor, ImageIndex, ImageRecord } from './image-index.js';
import { availablePlatforms, fetchManifest, parseIndex, parseManifest, selectPlatform, type FetchedManifest } from './manifest.js';
import { noRoom } from './free-space.js';
import { parseImageConfig } from './image-config.js';
import { checkDescriptors, type ImageLimits } from './image-limits.js';
import { isConfigMediaType, isIndexMediaType, isLayerMediaType } from './media-types.js';
import { formatPlatform, hostPlatform, platformMatches, type Platform } from './platform.js';
import type { Endpoint, RegistryClient } from './registry-client.js';
import { DigestMismatchError, ImageError, RegistryError } from '../errors/errors.js';
import type { LazyLayerRecord } from './lazy/lazy-image.js';
import { pullLayerLazily } from './lazy/lazy-pull.js';

export type PullEvent =
  | { type: 'resolved'; name: string; digest: string; config: Descriptor; layers: Descriptor[] }
  | { type: 'progress'; digest: string; done: number; total: number }
  | { type: 'stored'; digest: string; cached: boolean };

export interface PullOptions {
  platform?: Platform;
  onEvent?: (event: PullEvent) => void;
  /** Layers downloaded at once. */
  parallel?: number;
  /** Only the TOCs of eStargz layers (lazy loading); other layers whole, kept uncompressed too. */
  lazy?: boolean;
}

async function mapLimit<T>(items: T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await run(items[next++]!);
  });
  await Promise.all(workers);
}

export class Puller {
  constructor(private readonly client: RegistryClient, private readonly store: ContentStore, private readonly images: ImageIndex, private readonly limits: ImageLimits) {}

  /** Pulls `text` and records it; errors are ImageErrors naming the image. */
  async pull(text: string, options: PullOptions = {}): Promise<ImageRecord> {
    let ref: ImageReference | undefined;
    try {
      ref = parseReference(text);
      return await withLock(this.store.gcLockPath, 'sh', () => this.pullResolved(ref!, options));
    } catch (error) {
      const cause = error instanceof DigestMismatchError ? new RegistryError('digest-mismatch', error.message) : (error as Error);
      throw new ImageError(ref ? formatReference(ref) : text, cause);
    }
  }

  private async resolve(ref: ImageReference, endpoints: Endpoint[]): Promise<{ endpoint: Endpoint; top: FetchedManifest }> {
    const mirrorFailures: string[] = [];
    for (const endpoint of endpoints) {
      try {
        const top = await fetchManifest(this.client, endpoint, ref.repository, manifestReference(ref), ref.digest);
        return { endpoint, top };
      } catch (error) {
        if (!endpoint.mirror) {
          // What the registry said, and why each mirror before it could not serve: a misconfigured mirror
          // would otherwise go unnoticed.
          if (!mirrorFailures.length || !(error instanceof RegistryError)) throw error;
          throw new RegistryError(error.kind, `${error.message} (mirrors tried first: ${mirrorFailures.join('; ')})`, error.transient);
        }
        mirrorFailures.push((error as Error).message);
      }
    }
    throw new Error('no endpoint to pull from');
  }

  private async pullResolved(ref: ImageReference, options: PullOptions): Promise<ImageRecord> {
    const name = formatReference(ref);
    const endpoints = this.client.endpoints(ref.registry);
    const { endpoint, top } = await this.resolve(ref, endpoints);
    const wanted = options.platform ?? hostPlatform();
    let manifest = top;
    if (isIndexMediaType(top.mediaType)) {
      const index = parseIndex(top.bytes);
      const entry = selectPlatform(index, wanted, platformMatches);
      if (!entry) {
        const nested = index.manifests.filter((m) => isIndexMediaType(m.mediaType)).map((m) => m.digest);
        const followed = nested.length > 0 ? `; nested indexes are not followed: ${nested.join(', ')}` : '';
        throw new RegistryError('no-platform', `no manifest for platform ${formatPlatform(wanted)} (the index has ${availablePlatforms(index).join(', ') || 'none'}${followed})`);
      }
      manifest = await fetchManifest(this.client, endpoint, ref.repository, entry.digest, entry.digest);
      if (isIndexMediaType(manifest.mediaType)) throw new RegistryError('protocol', `index entry ${entry.digest} is an index, not a manifest`);
      if (manifest.mediaType !== entry.mediaType) throw new RegistryError('protocol', `index entry ${entry.digest} is ${entry.mediaType} but the registry served ${manifest.mediaType}`);
    }
    const document = parseManifest(manifest.bytes);
    if (!isConfigMediaType(document.config.mediaType)) throw new RegistryError('protocol', `config media type "${document.config.mediaType}" is not an image config`);
    const unsupported = document.layers.find((layer) => !isLayerMediaType(layer.mediaType));
    if (unsupported) throw new RegistryError('protocol', `layer ${unsupported.digest} has unsupported media type "${unsupported.mediaType}"`);
    checkDescriptors(document.config, document.layers, this.limits);
    const missing = [document.config, ...document.layers].filter((blob, i, all) => !this.store.has(blob.digest) && all.findIndex((b) => b.digest === blob.digest) === i);
    const full = noRoom(this.store.dir, missing.reduce((sum, blob) => sum + blob.size, 0), missing.length);
    if (full) throw new RegistryError('limit', `image store ${this.store.dir}: ${full}`);
    options.onEvent?.({ type: 'resolved', name, digest: top.digest, config: document.config, layers: document.layers });

    const fetcher = new BlobFetcher(this.client, [endpoint, ...endpoints.filter((e) => e !== endpoint)], ref.repository);
    const fetchBlob = async (blob: Descriptor): Promise<void> => {
      const cached = this.store.has(blob.digest);
      await this.store.ingest(blob.digest, fetcher.source(blob.digest), {
        size: blob.size,
        retries: this.client.retries,
        backoff: (attempt) => this.client.backoff(attempt),
        onProgress: (done) => options.onEvent?.({ type: 'progress', digest: blob.digest, done, total: blob.size }),
      });
      options.onEvent?.({ type: 'stored', digest: blob.digest, cached });
    };
    await fetchBlob(document.config);
    const config = parseImageConfig(this.store.read(document.config.digest), `config of ${name}`);
    if (config.rootfs.diff_ids.length !== document.layers.length) {
      throw new RegistryError('protocol', `config of ${name} has ${config.rootfs.diff_ids.length} diff_ids for ${document.layers.length} layers`);
    }
    const lazy: LazyLayerRecord[] = [];
    if (options.lazy) {
      await mapLimit(document.layers.map((layer, i) => ({ layer, i })), options.parallel ?? 4, async ({ layer, i }) => {
        lazy[i] = await pullLayerLazily(fetcher, this.store, layer, config.rootfs.diff_ids[i]!, fetchBlob);
        if (lazy[i]!.toc) options.onEvent?.({ type: 'stored', digest: layer.digest, cached: false });
      });
    } else await mapLimit(document.layers, options.parallel ?? 4, fetchBlob);

    // Stored last, so that a failed pull leaves nothing an image record could point at.
    this.store.put(top.digest, top.bytes);
    this.store.put(manifest.digest, manifest.bytes);
    const now = new Date().toISOString();
    const digests = new Set([top.digest, manifest.digest, document.config.digest, ...document.layers.map((layer) => layer.digest)]);
    const size = [...digests].reduce((sum, digest) => sum + (this.store.has(digest) ? this.store.size(digest) : 0), 0);
    const imagePlatform: Platform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
    const platform = formatPlatform(imagePlatform);
    if (options.platform && !isIndexMediaType(top.mediaType) && !platformMatches(imagePlatform, options.platform)) {
      throw new RegistryError('no-platform', `no manifest for platform ${formatPlatform(options.platform)} (the image is ${platform})`);
    }
    const record: ImageRecord = {
      name,
      digest: top.digest,
      manifest: manifest.digest,
      config: document.config,
      layers: document.layers,
      platform,
      size,
      pulled: now,
      lastUsed: now,
      ...(options.lazy ? { lazy } : {}),
    };
    await this.images.update((records) => {
      records[name] = record;
    });
    return record;
  }
}
