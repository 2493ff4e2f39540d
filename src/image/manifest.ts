// Fetching manifests and indexes: negotiated by Accept, checked for a mediaType that agrees with Content-Type,
// verified against the digest asked for (a tag's manifest is addressed by the digest of the bytes received).
import { digestHasher, digestOf, checkDigest } from './digest.js';
import type { Descriptor } from './image-index.js';
import { isIndexMediaType, isManifestMediaType, MANIFEST_ACCEPT, MediaType } from './media-types.js';
import type { Platform } from './platform.js';
import { failure, type Endpoint, type RegistryClient } from './registry-client.js';
import { DigestMismatchError, RegistryError } from '../errors/errors.js';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface IndexEntry extends Descriptor {
  platform?: Platform & { 'os.version'?: string };
}

export interface IndexDocument {
  mediaType?: string;
  manifests: IndexEntry[];
}

export interface ManifestDocument {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

function baseType(contentType: string | null): string {
  return (contentType ?? '').split(';')[0]!.trim();
}

export async function fetchManifest(client: RegistryClient, endpoint: Endpoint, repository: string, reference: string, expectedDigest?: string): Promise<FetchedManifest> {
  const response = await client.request(endpoint, `${repository}/manifests/${reference}`, `repository:${repository}:pull`, {
    headers: { accept: MANIFEST_ACCEPT.join(', ') },
  });
  if (response.status !== 200) throw await failure(response, `manifest ${reference}`);
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > MAX_MANIFEST_BYTES) {
    response.body.destroy();
    throw new RegistryError('protocol', `manifest ${reference} is larger than ${MAX_MANIFEST_BYTES} bytes`);
  }
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of response.body) {
    length += (chunk as Buffer).length;
    if (length > MAX_MANIFEST_BYTES) {
      response.body.destroy();
      throw new RegistryError('protocol', `manifest ${reference} is larger than ${MAX_MANIFEST_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  const bytes = Buffer.concat(chunks);
  const digest = expectedDigest ?? digestOf(bytes);
  if (expectedDigest) {
    try {
      checkDigest(digestHasher(expectedDigest).update(bytes), expectedDigest);
    } catch (error) {
      if (error instanceof DigestMismatchError) throw new RegistryError('digest-mismatch', `manifest ${error.message}`);
      throw error;
    }
  }
  let parsed: { mediaType?: unknown; schemaVersion?: unknown };
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as typeof parsed;
  } catch {
    throw new RegistryError('protocol', `manifest ${reference} is not JSON`);
  }
  const contentType = baseType(response.headers.get('content-type'));
  const mediaType = typeof parsed.mediaType === 'string' ? parsed.mediaType : contentType;
  if (typeof parsed.mediaType === 'string' && contentType && contentType !== parsed.mediaType) {
    throw new RegistryError('protocol', `manifest ${reference} says it is ${parsed.mediaType} but was served as ${contentType}`);
  }
  if (mediaType === MediaType.dockerManifestV1Signed || parsed.schemaVersion === 1) {
    throw new RegistryError('protocol', `manifest ${reference} is Docker schema 1, which is not supported`);
  }
  if (!isIndexMediaType(mediaType) && !isManifestMediaType(mediaType)) {
    throw new RegistryError('protocol', `manifest ${reference} has unsupported media type "${mediaType || 'none'}"`);
  }
  return { digest, mediaType, bytes };
}

function isAttestation(entry: IndexEntry): boolean {
  return entry.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || entry.platform?.os === 'unknown';
}

export function parseIndex(bytes: Buffer): IndexDocument {
  const index = JSON.parse(bytes.toString('utf8')) as IndexDocument;
  if (!Array.isArray(index.manifests)) throw new RegistryError('protocol', 'index has no manifests list');
  return index;
}

export function parseManifest(bytes: Buffer): ManifestDocument {
  const manifest = JSON.parse(bytes.toString('utf8')) as ManifestDocument;
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new RegistryError('protocol', 'manifest has no config or layers');
  return manifest;
}

/** The index entry for `wanted`, never an attestation; undefined when none matches. */
export function selectPlatform(index: IndexDocument, wanted: Platform, matches: (entry: Platform, wanted: Platform) => boolean): IndexEntry | undefined {
  return index.manifests.find((entry) => !isAttestation(entry) && isManifestMediaType(entry.mediaType) && entry.platform && matches(entry.platform, wanted));
}

/** The platforms of the index's manifests (not of the indexes it may hold). */
export function availablePlatforms(index: IndexDocument): string[] {
  return index.manifests
    .filter((entry) => !isAttestation(entry) && isManifestMediaType(entry.mediaType) && entry.platform)
    .map((entry) => [entry.platform!.os, entry.platform!.architecture, entry.platform!.variant].filter(Boolean).join('/'));
}
