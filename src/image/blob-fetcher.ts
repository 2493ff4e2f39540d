// Blob bytes from a registry by digest, whole or as one byte range (the lazy loader asks for ranges), from the
// first endpoint (mirrors, then the registry) that has it. Callers verify what they read.
import type { Readable } from 'node:stream';
import type { RangeSource } from './content-store.js';
import { failure, type Endpoint, type RegistryClient } from './registry-client.js';
import { RegistryError } from '../errors/errors.js';

export class BlobFetcher {
  constructor(private readonly client: RegistryClient, private readonly endpoints: Endpoint[], private readonly repository: string) {}

  /**
   * Bytes [from, to] (inclusive; `to` omitted = to the end). The result's `offset` is where the body starts:
   * a registry may ignore Range and send the whole blob from 0.
   */
  async range(digest: string, from: number, to?: number): Promise<{ body: Readable; offset: number; total?: number }> {
    let lastError: unknown;
    for (const endpoint of this.endpoints) {
      try {
        return await this.rangeFrom(endpoint, digest, from, to);
      } catch (error) {
        lastError = error;
        if (!endpoint.mirror) break;
      }
    }
    throw lastError;
  }

  private async rangeFrom(endpoint: Endpoint, digest: string, from: number, to?: number): Promise<{ body: Readable; offset: number; total?: number }> {
    const ranged = from > 0 || to !== undefined;
    const response = await this.client.request(endpoint, `${this.repository}/blobs/${digest}`, `repository:${this.repository}:pull`, {
      headers: ranged ? { range: `bytes=${from}-${to ?? ''}` } : {},
    });
    if (response.status === 200) {
      const length = response.headers.get('content-length');
      return { body: response.body, offset: 0, ...(length ? { total: Number(length) } : {}) };
    }
    if (response.status === 206) {
      const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(response.headers.get('content-range') ?? '');
      if (!match) {
        response.body.destroy();
        throw new RegistryError('protocol', `blob ${digest}: a partial answer without a usable Content-Range`);
      }
      return { body: response.body, offset: Number(match[1]), ...(match[3] !== '*' ? { total: Number(match[3]) } : {}) };
    }
    throw await failure(response, `blob ${digest}`);
  }

  /** The whole blob as the content store downloads it, resumable from any offset. */
  source(digest: string): RangeSource {
    return { open: (offset) => this.range(digest, offset) };
  }
}
