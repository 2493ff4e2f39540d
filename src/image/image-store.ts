// A store of images on disk: the content store, the image records, pulling, removal, pruning and a size quota
// kept by evicting the least recently used images.
import { join } from 'node:path';
import { ContentStore } from './content-store.js';
import { withLock } from '../host/file-lock.js';
import { ImageIndex, type ImageRecord } from './image-index.js';
import { lazyChunkDigests } from './lazy/lazy-references.js';
import { DEFAULT_IMAGE_LIMITS, type ImageLimits } from './image-limits.js';
import { Puller, type PullOptions } from './pull.js';
import { pushImage, type PushBlob } from './push.js';
import { formatReference, parseReference } from './reference.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';
import { ImageNotFoundError } from '../errors/errors.js';

export const DEFAULT_STORE = '/var/lib/runbox/images';

export interface ImageStoreOptions extends RegistryClientOptions {
  /** Bytes the store may hold; after a pull, least recently used images are evicted until it fits. */
  quota?: number;
  /** What an image may take to be pulled and unpacked (DEFAULT_IMAGE_LIMITS by default). */
  limits?: ImageLimits;
}

export class ImageStore {
  readonly content: ContentStore;
  readonly images: ImageIndex;
  readonly limits: ImageLimits;
  private clientInstance: RegistryClient | undefined;

  constructor(readonly dir: string, private readonly options: ImageStoreOptions = {}) {
    this.content = new ContentStore(dir);
    this.images = new ImageIndex(dir);
    this.limits = options.limits ?? DEFAULT_IMAGE_LIMITS;
  }

  private get client(): RegistryClient {
    this.clientInstance ??= new RegistryClient(this.options);
    return this.clientInstance;
  }

  /** The bytes the store may hold, when it has a quota. */
  get quota(): number | undefined {
    return this.options.quota;
  }

  /** Bytes the store's blobs take. */
  used(): number {
    return this.content.blobs().reduce((sum, blob) => sum + blob.size, 0);
  }

  close(): void {
    this.clientInstance?.close();
  }

  async pull(reference: string, options: PullOptions = {}): Promise<ImageRecord> {
    const record = await this.pullOnly(reference, options);
    await this.keepQuota(record.name);
    return record;
  }

  /** Pulls without enforcing the quota: for callers that hold the store in use (see `using`). */
  pullOnly(reference: string, options: PullOptions = {}): Promise<ImageRecord> {
    return new Puller(this.client, this.content, this.images, this.limits).pull(reference, options);
  }

  /** Pushes a manifest and the blobs it needs (those the registry lacks) as `reference`. */
  push(reference: string, manifest: { mediaType: string; bytes: Buffer }, blobs: PushBlob[]): Promise<void> {
    return pushImage(this.client, reference, manifest, blobs);
  }

  /** Records an image whose blobs are all in the store (made here, as by `image convert`) under `reference`. */
  async record(reference: string, image: Pick<ImageRecord, 'digest' | 'manifest' | 'config' | 'layers' | 'platform'>): Promise<ImageRecord> {
    const name = formatReference(parseReference(reference));
    const now = new Date().toISOString();
    const size = [image.manifest, image.config.digest, ...image.layers.map((layer) => layer.digest)].reduce((sum, digest) => sum + this.content.size(digest), 0);
    const record: ImageRecord = { name, ...image, size, pulled: now, lastUsed: now };
    await this.images.update((records) => {
      records[name] = record;
    });
    return record;
  }

  /** Runs `body` with the blobs protected from garbage collection (and so from eviction). */
  using<T>(body: () => Promise<T>): Promise<T> {
    return withLock(this.content.gcLockPath, 'sh', body);
  }

  /** With a quota, evicts least recently used images other than `keep` until the store fits. */
  async keepQuota(keep: string): Promise<void> {
    if (this.options.quota !== undefined) await this.enforceQuota(this.options.quota, keep);
  }

  /** The stored image a reference names (by its canonical name, or by the digest it resolved to). */
  find(reference: string): ImageRecord | undefined {
    const records = this.images.all();
    if (/^sha256:[0-9a-f]{64}$/.test(reference)) return records.find((r) => r.digest === reference || r.manifest === reference);
    const name = formatReference(parseReference(reference));
    return records.find((record) => record.name === name);
  }

  /** Records that a stored image was used now (for least-recently-used eviction). */
  async markUsed(found: ImageRecord): Promise<ImageRecord> {
    const now = new Date().toISOString();
    await this.images.update((records) => {
      if (records[found.name]) records[found.name]!.lastUsed = now;
    });
    return { ...found, lastUsed: now };
  }

  list(): ImageRecord[] {
    return this.images.all();
  }

  /** Forgets the named images and frees the blobs no other image needs; unknown names are an error. */
  async remove(references: string[]): Promise<ImageRecord[]> {
    const targets = references.map((reference) => {
      const record = this.find(reference);
      if (!record) throw new ImageNotFoundError(`image ${reference}: not in the store`);
      return record;
    });
    await this.images.update((records) => {
      for (const target of targets) delete records[target.name];
    });
    await this.collect();
    return targets;
  }

  /** Frees blobs no image needs and partial downloads left by interrupted pulls; returns the bytes freed. */
  collect(): Promise<number> {
    return withLock(this.content.gcLockPath, 'ex', () => this.content.collect(lazyChunkDigests(this.content, this.images.all(), this.images.referenced())));
  }

  /** Evicts least recently used images (never those in `keep`) until the store's blobs fit in `quota` bytes. */
  async enforceQuota(quota: number, keep?: string | ReadonlySet<string>): Promise<ImageRecord[]> {
    const evicted: ImageRecord[] = [];
    const kept = (name: string): boolean => (typeof keep === 'string' ? name === keep : keep?.has(name) === true);
    await this.collect();
    while (this.used() > quota) {
      const victim = this.images.all().filter((record) => !kept(record.name)).sort((a, b) => (a.lastUsed < b.lastUsed ? -1 : a.lastUsed > b.lastUsed ? 1 : 0))[0];
      if (!victim) break;
      await this.images.update((records) => {
        delete records[victim.name];
      });
      evicted.push(victim);
      await this.collect();
    }
    return evicted;
  }

  bundlesDir(): string {
    return join(this.dir, 'bundles');
  }
}
