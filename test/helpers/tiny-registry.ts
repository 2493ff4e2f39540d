// A registry written for tests, on 127.0.0.1: images crafted in memory however wrong (no sizes, bad diff_ids,
// nested indexes), served as the distribution API serves them, any request answerable by the test instead (a blob
// held part-way until the test lets it go, an auth challenge, a redirect). Plus plain HTTP(S) servers that record
// what reaches them, for the hosts a hostile registry sends clients to.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MediaType } from '../../src/image/media-types.js';
import { hostPlatform } from '../../src/image/platform.js';
import { compress, sha256, tarBytes, type Compression, type LayerEntry } from './layers.js';
import { selfSignedCertificate } from './registry.js';
import type { TeardownOwner } from './teardown.js';

export interface SeenRequest {
  method: string;
  path: string;
  /** The whole Authorization header, when there was one. */
  authorization?: string;
}

/** Answers a request, or returns false to leave it to the server's own handling. */
export type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => boolean | Promise<boolean>;

export interface TestServer {
  /** host:port */
  host: string;
  url: string;
  requests: SeenRequest[];
  /** Tried first, in order, for every request. */
  handlers: Handler[];
  /** With TLS: the certificate (PEM file) that vouches for it, for NODE_EXTRA_CA_CERTS. */
  certificate?: string;
}

/** An HTTP server on 127.0.0.1 (or another loopback address) that records requests and answers 404 by default. */
export async function startServer(t: TeardownOwner, options: { tls?: boolean; address?: string } = {}): Promise<TestServer> {
  const address = options.address ?? '127.0.0.1';
  const server: TestServer = { host: '', url: '', requests: [], handlers: [] };
  const listener = async (request: http.IncomingMessage, response: http.ServerResponse) => {
    server.requests.push({ method: request.method ?? 'GET', path: request.url ?? '/', ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}) });
    try {
      for (const handler of server.handlers) if (await handler(request, response)) return;
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NOT_FOUND"}]}');
    } catch {
      response.destroy();
    }
  };
  let http_: http.Server;
  if (options.tls) {
    const dir = mkdtempSync(join(tmpdir(), 'runbox-tls-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    server.certificate = join(dir, 'cert.pem');
    selfSignedCertificate(join(dir, 'key.pem'), server.certificate, `/CN=${address}`, ['-addext', `subjectAltName=IP:${address}`]);
    http_ = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(server.certificate) }, (q, s) => void listener(q, s));
  } else {
    http_ = http.createServer((q, s) => void listener(q, s));
  }
  const sockets = new Set<Socket>();
  http_.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => http_.listen(0, address, resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => http_.close(() => resolve()));
  });
  server.host = `${address}:${(http_.address() as AddressInfo).port}`;
  server.url = `${options.tls ? 'https' : 'http'}://${server.host}`;
  return server;
}

export interface Blob {
  digest: string;
  size: number;
}

export interface TinyRegistry extends TestServer {
  /** Stores bytes as a blob. */
  blob(bytes: Buffer): Blob;
  /** Stores a manifest or index (served with its mediaType as Content-Type), under `tag` too when given. */
  manifest(repository: string, document: object, tag?: string): Blob & { mediaType: string };
  /** Answers GETs of this blob with `serve` instead (the stored bytes are given to it); undefined: as stored again. */
  serveBlob(digest: string, serve: ((response: http.ServerResponse, bytes: Buffer, request: http.IncomingMessage) => void | Promise<void>) | undefined): void;
}

/** The distribution API's read side over blobs and manifests held in memory; Range requests of one range honoured. */
export async function startTinyRegistry(t: TeardownOwner): Promise<TinyRegistry> {
  const server = await startServer(t);
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { bytes: Buffer; mediaType: string }>();
  const custom = new Map<string, (response: http.ServerResponse, bytes: Buffer, request: http.IncomingMessage) => void | Promise<void>>();
  const registry: TinyRegistry = {
    ...server,
    blob(bytes) {
      const digest = sha256(bytes);
      blobs.set(digest, bytes);
      return { digest, size: bytes.length };
    },
    manifest(repository, document, tag) {
      const bytes = Buffer.from(JSON.stringify(document));
      const mediaType = (document as { mediaType?: string }).mediaType ?? MediaType.ociManifest;
      const digest = sha256(bytes);
      manifests.set(`${repository}@${digest}`, { bytes, mediaType });
      if (tag) manifests.set(`${repository}@${tag}`, { bytes, mediaType });
      return { digest, size: bytes.length, mediaType };
    },
    serveBlob(digest, serve) {
      if (serve) custom.set(digest, serve);
      else custom.delete(digest);
    },
  };
  server.handlers.push(async (request, response) => {
    const path = new URL(request.url ?? '/', 'http://registry').pathname;
    if (path === '/v2/' || path === '/v2') {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return true;
    }
    const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (manifest) {
      const found = manifests.get(`${manifest[1]}@${manifest[2]}`);
      if (!found) return false;
      response.writeHead(200, { 'content-type': found.mediaType, 'content-length': found.bytes.length, 'docker-content-digest': sha256(found.bytes) });
      response.end(request.method === 'HEAD' ? undefined : found.bytes);
      return true;
    }
    const blob = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path);
    const bytes = blob && blobs.get(blob[1]!);
    if (!blob || !bytes) return false;
    const serve = custom.get(blob[1]!);
    if (serve) {
      await serve(response, bytes, request);
      return true;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? '');
    const from = Number(range?.[1] ?? 0);
    const to = range?.[2] ? Math.min(Number(range[2]), bytes.length - 1) : bytes.length - 1;
    if (range && (from > 0 || to < bytes.length - 1)) {
      response.writeHead(206, { 'content-length': to + 1 - from, 'content-range': `bytes ${from}-${to}/${bytes.length}` }).end(bytes.subarray(from, to + 1));
    } else {
      response.writeHead(200, { 'content-length': bytes.length }).end(bytes);
    }
    return true;
  });
  return registry;
}

/** A blob answer that sends the first `bytes` bytes, then waits until `release` before sending the rest. */
export function heldBlob(bytes: number): { serve: (response: http.ServerResponse, blob: Buffer) => Promise<void>; release(): void; sent: Promise<void> } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let sent!: () => void;
  const firstPart = new Promise<void>((resolve) => (sent = resolve));
  return {
    release,
    sent: firstPart,
    async serve(response, blob) {
      response.writeHead(200, { 'content-length': blob.length });
      response.write(blob.subarray(0, bytes));
      sent();
      await released;
      response.end(blob.subarray(bytes));
    },
  };
}

export interface CraftedLayer extends Blob {
  bytes: Buffer;
  mediaType: string;
  diffId: string;
}

const LAYER_TYPES: Record<Compression, string> = { none: MediaType.ociLayerTar, gzip: MediaType.ociLayerGzip, zstd: MediaType.ociLayerZstd };

export async function craftedLayer(entries: LayerEntry[], compression: Compression = 'gzip'): Promise<CraftedLayer> {
  const tar = await tarBytes(entries);
  const bytes = compress(tar, compression);
  return { bytes, digest: sha256(bytes), size: bytes.length, mediaType: LAYER_TYPES[compression], diffId: sha256(tar) };
}

export interface CraftedImage {
  /** The reference to pull: HOST/REPOSITORY:TAG */
  ref: string;
  manifest: Blob;
  config: Blob;
}

/**
 * Stores an image of `layers` as REPOSITORY:TAG: an OCI manifest and a config for this host's platform whose
 * command is /bin/true. `edit` may change both documents before they are stored (drop sizes, break diff_ids…).
 */
export function craftImage(
  registry: TinyRegistry,
  repository: string,
  tag: string,
  layers: CraftedLayer[],
  edit: { config?: (config: Record<string, unknown>) => void; manifest?: (manifest: { config: Record<string, unknown>; layers: Array<Record<string, unknown>> }) => void } = {},
): CraftedImage {
  const { os, architecture } = hostPlatform();
  const config: Record<string, unknown> = { os, architecture, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) }, config: { Cmd: ['/bin/true'] } };
  edit.config?.(config);
  const configBlob = registry.blob(Buffer.from(JSON.stringify(config)));
  for (const layer of layers) registry.blob(layer.bytes);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, ...configBlob } as Record<string, unknown>,
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }) as Record<string, unknown>),
  };
  edit.manifest?.(manifest);
  const stored = registry.manifest(repository, manifest, tag);
  return { ref: `${registry.host}/${repository}:${tag}`, manifest: stored, config: configBlob };
}
