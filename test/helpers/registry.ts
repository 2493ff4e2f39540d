// A real docker-registry (distribution 2.8) on 127.0.0.1 for tests, images pushed into it with skopeo, plus the
// pieces around it: htpasswd basic auth, a bearer token server, and a proxy that injects faults.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createSign, randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { TeardownOwner } from './teardown.js';
import { PROJECT } from './runbox.js';
import { freePort } from './ports.js';
import { inNetns, type NetNamespace } from './netns.js';

export const FIXTURE_OCI = join(PROJECT, 'fixtures', 'busybox', 'build', 'oci');

export interface Registry {
  /** host:port */
  host: string;
  storage: string;
  /** With TLS: the PEM of its self-signed certificate (for 127.0.0.1), the one CA that can vouch for it. */
  certificate?: string;
  /** The network namespace it listens in (its 127.0.0.1 is that namespace's), when not the test's own. */
  netns?: NetNamespace;
}

function tempDir(t: TeardownOwner, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function stopOnTeardown(t: TeardownOwner, child: ChildProcess): void {
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
}

/** Whether anything answers HTTP at url, from inside netns (any answer, an error status too). */
function answersInNetns(netns: NetNamespace, url: string): boolean {
  const probe = `fetch(${JSON.stringify(url)}).then(() => process.exit(0), () => process.exit(1))`;
  const [command, args] = inNetns(netns, process.execPath, ['-e', probe]);
  return spawnSync(command, args).status === 0;
}

async function waitForHttp(url: string, child: ChildProcess, log: () => string, netns?: NetNamespace): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${log()}`);
    try {
      if (netns) {
        if (answersInNetns(netns, url)) return;
        throw new Error('no answer yet');
      }
      const response = await fetch(url);
      await response.arrayBuffer();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`docker-registry did not answer at ${url}: ${log()}`);
}

export interface RegistryAuth {
  htpasswd?: { username: string; password: string };
  token?: TokenServer;
}

/** docker-registry serving `storage` (a new empty one when omitted), stopped when the test ends. */
export async function startRegistry(
  t: TeardownOwner, options: { storage?: string; auth?: RegistryAuth; tls?: boolean; netns?: NetNamespace } = {},
): Promise<Registry> {
  const dir = tempDir(t, 'runbox-registry-');
  const storage = options.storage ?? join(dir, 'storage');
  const port = await freePort();
  let auth = '';
  if (options.auth?.htpasswd) {
    const { username, password } = options.auth.htpasswd;
    writeFileSync(join(dir, 'htpasswd'), `${username}:${bcrypt(password)}\n`);
    auth = `auth:\n  htpasswd:\n    realm: test\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (options.auth?.token) {
    const token = options.auth.token;
    auth = `auth:\n  token:\n    realm: ${token.realm}\n    service: ${token.service}\n    issuer: ${token.issuer}\n    rootcertbundle: ${token.certificatePath}\n`;
  }
  let tls = '';
  let certificate: string | undefined;
  if (options.tls) {
    certificate = join(dir, 'tls-cert.pem');
    const key = join(dir, 'tls-key.pem');
    selfSignedCertificate(key, certificate, '/CN=127.0.0.1', ['-addext', 'subjectAltName=IP:127.0.0.1']);
    tls = `  tls:\n    certificate: ${certificate}\n    key: ${key}\n`;
  }
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${tls}${auth}`,
  );
  const logPath = join(dir, 'log');
  const [command, args] = inNetns(options.netns, 'docker-registry', ['serve', join(dir, 'config.yml')]);
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  stopOnTeardown(t, child);
  // Over TLS too: Go's server answers a plain HTTP request with a 400, which is an answer.
  await waitForHttp(`http://127.0.0.1:${port}/v2/`, child, () => log || logPath, options.netns);
  return { host: `127.0.0.1:${port}`, storage, ...(certificate ? { certificate } : {}), ...(options.netns ? { netns: options.netns } : {}) };
}

export function selfSignedCertificate(keyPath: string, certificatePath: string, subject: string, extra: string[] = []): void {
  const openssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-days', '1', ...extra, '-keyout', keyPath, '-out', certificatePath], { encoding: 'utf8' });
  if (openssl.status !== 0) throw new Error(`openssl: ${openssl.stderr}`);
}

/** A bcrypt htpasswd hash, which docker-registry requires (python3's crypt has Blowfish on glibc). */
function bcrypt(password: string): string {
  const result = spawnSync('python3', ['-W', 'ignore', '-c', 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))', password], { encoding: 'utf8' });
  if (result.status !== 0 || !result.stdout.startsWith('$2')) throw new Error(`cannot make a bcrypt hash: ${result.stderr}`);
  return result.stdout.trim();
}

/** The digest of the busybox fixture's one layer. */
export function fixtureLayer(): string {
  const index = JSON.parse(readFileSync(join(FIXTURE_OCI, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(join(FIXTURE_OCI, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers[0]!.digest;
}

/** skopeo copy of an OCI layout's tag into the registry. */
export function push(registry: Registry, layout: string, tag: string, target: string, options: { all?: boolean } = {}): void {
  const [command, args] = inNetns(registry.netns, 'skopeo', [
    'copy', '--quiet', '--dest-tls-verify=false', ...(options.all ? ['--multi-arch', 'all'] : []), `oci:${layout}:${tag}`, `docker://${registry.host}/${target}`,
  ]);
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`skopeo copy to ${target} failed: ${result.stderr}`);
}

function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

interface LayoutDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

/**
 * A copy of the busybox layout whose tag "multi" is an index: an attestation manifest first (annotated, as
 * BuildKit writes them, and claiming linux/amd64 so only the annotation tells it apart), linux/arm64/v8 (the
 * busybox layer under a config saying arm64), and the real linux/amd64 manifest.
 */
export function multiArchLayout(t: ExecutionContext): { layout: string; amd64: string; arm64: string; attestation: string } {
  const layout = join(tempDir(t, 'runbox-layout-'), 'oci');
  cpSync(FIXTURE_OCI, layout, { recursive: true });
  const blob = (digest: string): Buffer => readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)));
  const write = (data: Buffer | string): LayoutDescriptor & { data: Buffer } => {
    const bytes = Buffer.from(data);
    const digest = sha256(bytes);
    writeFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
    return { mediaType: '', digest, size: bytes.length, data: bytes };
  };
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: LayoutDescriptor[] };
  const amd64 = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'latest')!;
  const manifest = JSON.parse(blob(amd64.digest).toString()) as { config: LayoutDescriptor; layers: LayoutDescriptor[] };
  const variant = (architecture: string, layers: LayoutDescriptor[]): LayoutDescriptor => {
    const config = JSON.parse(blob(manifest.config.digest).toString()) as Record<string, unknown>;
    config.architecture = architecture;
    if (architecture === 'arm64') config.variant = 'v8';
    const configBlob = write(JSON.stringify(config));
    const body = write(JSON.stringify({ ...manifest, config: { ...manifest.config, digest: configBlob.digest, size: configBlob.size }, layers }));
    return { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: body.digest, size: body.size };
  };
  const emptyLayer = write(Buffer.alloc(1024));
  const attestation = {
    ...variant('unknown', [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: emptyLayer.digest, size: emptyLayer.size }]),
    platform: { os: 'linux', architecture: 'amd64' },
    annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': amd64.digest },
  };
  const arm64 = { ...variant('arm64', manifest.layers), platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } };
  const amd64Entry = { mediaType: amd64.mediaType, digest: amd64.digest, size: amd64.size, platform: { os: 'linux', architecture: 'amd64' } };
  const multi = write(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [attestation, arm64, amd64Entry] }));
  index.manifests.push({ mediaType: 'application/vnd.oci.image.index.v1+json', digest: multi.digest, size: multi.size, annotations: { 'org.opencontainers.image.ref.name': 'multi' } });
  writeFileSync(join(layout, 'index.json'), JSON.stringify(index));
  return { layout, amd64: amd64.digest, arm64: arm64.digest, attestation: attestation.digest };
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certificatePath: string;
  /** Tokens issued so far, by scope. */
  issued: string[];
  /** Lifetime of the tokens it issues, in seconds. */
  expiresIn: number;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * The token service of the docker token auth flow: it checks basic credentials, then signs a JWT (RS256, its
 * certificate in x5c) granting pull on the scope asked for, which docker-registry verifies against that cert.
 */
export async function startTokenServer(t: ExecutionContext, credentials: { username: string; password: string }): Promise<TokenServer> {
  const dir = tempDir(t, 'runbox-token-');
  const keyPath = join(dir, 'key.pem');
  const certificatePath = join(dir, 'cert.pem');
  selfSignedCertificate(keyPath, certificatePath, '/CN=runbox-test-token');
  const key = readFileSync(keyPath, 'utf8');
  const der = Buffer.from(readFileSync(certificatePath, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const expected = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://token');
    if (request.headers.authorization !== expected) {
      response.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
      return;
    }
    const scope = url.searchParams.get('scope') ?? '';
    const [type, name, actions] = scope.split(':');
    const now = Math.floor(Date.now() / 1000);
    const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')] }));
    const claims = base64url(
      JSON.stringify({
        iss: token.issuer, sub: credentials.username, aud: token.service, exp: now + token.expiresIn, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'),
        access: type ? [{ type, name, actions: (actions ?? '').split(',') }] : [],
      }),
    );
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key).toString('base64url');
    token.issued.push(scope);
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${signature}`, expires_in: token.expiresIn }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.unref();
  const { port } = server.address() as AddressInfo;
  const token: TokenServer = { realm: `http://127.0.0.1:${port}/token`, service: 'runbox-test-registry', issuer: 'runbox-test-issuer', certificatePath, issued: [], expiresIn: 300 };
  return token;
}

/** What the fault proxy does to the next blob GETs (Range requests included). */
export type Fault =
  | { kind: 'cut'; afterBytes: number; times: number }
  | { kind: 'corrupt'; times: number }
  | { kind: 'error500'; times: number }
  /** 307 to `to` + the same path, as registries send blob downloads to their storage. */
  | { kind: 'redirect'; to: string; times: number }
  /** 401 with the registry's own last challenge, as when it stops accepting a token. */
  | { kind: 'unauthorized'; times: number }
  | { kind: 'stall'; afterBytes: number; times?: number }
  /** Manifests served with this Content-Type instead of the registry's. */
  | { kind: 'manifest-type'; contentType: string };

export interface FaultProxy {
  host: string;
  fault: Fault | undefined;
  /** When set, only blob requests whose path ends with it meet the fault. */
  only?: string;
  /** When set, Range headers are dropped: the registry answers as one without Range support, with the whole blob. */
  ignoreRange?: boolean;
  /** When set, blob GETs (those `only` names) wait for it before they are forwarded; `held` counts those waiting. */
  gate?: Promise<void>;
  held: number;
  /** Every request it saw: method, path, whether it carried Authorization, its Range, the status answered. */
  requests: { method: string; path: string; authorization: boolean; range?: string; status?: number }[];
  /** The last WWW-Authenticate the registry sent. */
  challenge?: string;
}

/** An HTTP proxy in front of `upstream` (host:port) that applies `fault` to blob downloads. */
export async function startFaultProxy(t: ExecutionContext, upstream: string): Promise<FaultProxy> {
  const sockets = new Set<import('node:net').Socket>();
  const proxy: FaultProxy = { host: '', fault: undefined, requests: [], held: 0 };
  const server = http.createServer(async (request, response) => {
    const gated = proxy.gate && /\/blobs\/sha256:/.test(request.url ?? '') && request.method === 'GET' && (!proxy.only || (request.url ?? '').endsWith(proxy.only));
    if (gated) {
      proxy.held++;
      await proxy.gate;
      proxy.held--;
    }
    const record: FaultProxy['requests'][number] = {
      method: request.method ?? 'GET',
      path: request.url ?? '/',
      authorization: request.headers.authorization !== undefined,
      ...(request.headers.range ? { range: request.headers.range } : {}),
    };
    proxy.requests.push(record);
    const isBlob = /\/blobs\/sha256:/.test(request.url ?? '') && request.method === 'GET' && (!proxy.only || (request.url ?? '').endsWith(proxy.only));
    const isManifest = /\/manifests\//.test(request.url ?? '') && request.method === 'GET';
    const fault = isBlob || (isManifest && proxy.fault?.kind === 'manifest-type') ? proxy.fault : undefined;
    const counted = fault && 'times' in fault && fault.times !== undefined;
    if (fault && counted && (fault as { times: number }).times <= 0) proxy.fault = undefined;
    const active = fault && (!counted || (fault as { times: number }).times > 0) ? fault : undefined;
    if (active && counted) (active as { times: number }).times--;
    if (active?.kind === 'redirect') {
      record.status = 307;
      response.writeHead(307, { location: `${active.to}${request.url ?? '/'}` }).end();
      return;
    }
    if (active?.kind === 'unauthorized') {
      record.status = 401;
      response.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': proxy.challenge ?? 'Bearer' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    if (active?.kind === 'error500') {
      record.status = 500;
      response.writeHead(500, { 'content-type': 'text/plain' }).end('injected failure');
      return;
    }
    const headers = { ...request.headers, host: upstream };
    if (proxy.ignoreRange) delete headers.range;
    const upstreamRequest = http.request({ host: upstream.split(':')[0], port: Number(upstream.split(':')[1]), method: request.method, path: request.url, headers }, (upstreamResponse) => {
      record.status = upstreamResponse.statusCode;
      const challenge = upstreamResponse.headers['www-authenticate'];
      if (challenge) proxy.challenge = challenge;
      const upstreamHeaders = { ...upstreamResponse.headers };
      if (active?.kind === 'manifest-type') upstreamHeaders['content-type'] = active.contentType;
      response.writeHead(upstreamResponse.statusCode ?? 502, upstreamHeaders);
      if (!active || active.kind === 'manifest-type' || (upstreamResponse.statusCode !== 200 && upstreamResponse.statusCode !== 206)) {
        upstreamResponse.pipe(response);
        return;
      }
      let sent = 0;
      let corrupted = false;
      upstreamResponse.on('data', (chunk: Buffer) => {
        if (active.kind === 'cut' || active.kind === 'stall') {
          const room = active.afterBytes - sent;
          if (room <= 0) return;
          response.write(chunk.subarray(0, room));
          sent += Math.min(room, chunk.length);
          if (sent >= active.afterBytes) {
            upstreamResponse.destroy();
            if (active.kind === 'cut') response.socket?.destroy();
          }
          return;
        }
        if (!corrupted && chunk.length > 0) {
          const copy = Buffer.from(chunk);
          copy[copy.length >> 1] ^= 0xff;
          corrupted = true;
          response.write(copy);
        } else response.write(chunk);
      });
      upstreamResponse.on('end', () => response.end());
    });
    upstreamRequest.on('error', () => response.destroy());
    request.pipe(upstreamRequest);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  proxy.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
