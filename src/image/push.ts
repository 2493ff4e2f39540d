// Pushing an image to a registry (the distribution API's write side): each blob the registry lacks uploaded
// whole (POST, then PUT with its digest), then the manifest under the reference's tag or digest.
import { createReadStream, statSync } from 'node:fs';
import { manifestReference, parseReference } from './reference.js';
import { failure, type Endpoint, type RegistryClient } from './registry-client.js';
import { RegistryError } from '../errors/errors.js';

export interface PushBlob {
  digest: string;
  /** The blob's bytes: a file, or in memory. */
  path?: string;
  bytes?: Buffer;
}

function registryPath(endpoint: Endpoint, location: string, repository: string): string {
  const url = new URL(location, new URL(`v2/${repository}/blobs/uploads/`, endpoint.base));
  if (url.origin !== endpoint.base.origin || !url.pathname.startsWith('/v2/')) throw new RegistryError('protocol', `upload location ${url.host} is not the registry`);
  return `${url.pathname.slice(4)}${url.search}`;
}

async function pushBlob(client: RegistryClient, endpoint: Endpoint, repository: string, blob: PushBlob): Promise<void> {
  const scope = `repository:${repository}:pull,push`;
  const head = await client.request(endpoint, `${repository}/blobs/${blob.digest}`, scope, { method: 'HEAD' });
  head.discard();
  if (head.status === 200) return;
  const started = await client.request(endpoint, `${repository}/blobs/uploads/`, scope, { method: 'POST', headers: { 'content-length': '0' } });
  if (started.status !== 202) throw await failure(started, `upload of ${blob.digest}`);
  started.discard();
  const location = started.headers.get('location');
  if (!location) throw new RegistryError('protocol', `upload of ${blob.digest}: no Location`);
  const path = registryPath(endpoint, location, repository);
  const size = blob.path ? statSync(blob.path).size : blob.bytes!.length;
  const done = await client.request(endpoint, `${path}${path.includes('?') ? '&' : '?'}digest=${encodeURIComponent(blob.digest)}`, scope, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: () => (blob.path ? createReadStream(blob.path) : blob.bytes!),
  });
  if (done.status !== 201) throw await failure(done, `upload of ${blob.digest}`);
  done.discard();
}

/** Pushes `blobs` then the manifest (`mediaType`, `bytes`) as `reference`. */
export async function pushImage(client: RegistryClient, reference: string, manifest: { mediaType: string; bytes: Buffer }, blobs: PushBlob[]): Promise<void> {
  const ref = parseReference(reference);
  const endpoint = client.endpoints(ref.registry).find((e) => !e.mirror)!;
  for (const blob of blobs) await pushBlob(client, endpoint, ref.repository, blob);
  const put = await client.request(endpoint, `${ref.repository}/manifests/${manifestReference(ref)}`, `repository:${ref.repository}:pull,push`, {
    method: 'PUT',
    headers: { 'content-type': manifest.mediaType, 'content-length': String(manifest.bytes.length) },
    body: () => manifest.bytes,
  });
  if (put.status !== 201) throw await failure(put, `manifest of ${reference}`);
  put.discard();
}
