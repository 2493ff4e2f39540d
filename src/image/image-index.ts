// The images a store holds, by name: DIR/images.json, rewritten atomically under DIR/images.lock.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../host/atomic-file.js';
import { withLock } from '../host/file-lock.js';
import type { LazyLayerRecord } from './lazy/lazy-image.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ImageRecord {
  /** The reference it was pulled by, canonical (registry/repository:tag or @digest). */
  name: string;
  /** What the reference resolved to: the index or the manifest. */
  digest: string;
  /** The manifest for the chosen platform. */
  manifest: string;
  config: Descriptor;
  layers: Descriptor[];
  platform: string;
  /** Bytes of every blob this image needs. */
  size: number;
  pulled: string;
  lastUsed: string;
  /** Pulled lazily: how each layer is had (lazy/lazy-image.ts). */
  lazy?: LazyLayerRecord[];
}

type Records = Record<string, ImageRecord>;

export class ImageIndex {
  constructor(private readonly dir: string) {}

  private get path(): string {
    return join(this.dir, 'images.json');
  }

  all(): ImageRecord[] {
    try {
      return Object.values(JSON.parse(readFileSync(this.path, 'utf8')) as Records).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  get(name: string): ImageRecord | undefined {
    return this.all().find((record) => record.name === name);
  }

  /** Changes the records under the index lock; `edit` returns what to hand back. */
  update<T>(edit: (records: Records) => T): Promise<T> {
    return withLock(join(this.dir, 'images.lock'), 'ex', async () => {
      const records = Object.fromEntries(this.all().map((record) => [record.name, record]));
      const result = edit(records);
      writeFileAtomic(this.path, JSON.stringify(records, null, 2));
      return result;
    });
  }

  /** Every blob digest some image needs: its index (when it resolved through one), manifest, config, layers. */
  referenced(): Set<string> {
    const keep = new Set<string>();
    for (const record of this.all()) {
      for (const digest of [record.digest, record.manifest, record.config.digest, ...record.layers.map((layer) => layer.digest)]) keep.add(digest);
      for (const layer of record.lazy ?? []) keep.add(layer.toc ? layer.toc.digest : layer.diffId);
    }
    return keep;
  }
}
