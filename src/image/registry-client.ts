// A client for the OCI distribution API (and Docker Registry v2) on node-fetch: endpoint choice (mirrors, then
// the registry; plain HTTP only for loopback or registries named insecure), bearer and basic auth from the
// WWW-Authenticate challenge, redirects that never carry Authorization, timeouts and retries with backoff.
// Credentials go only to the registry they are configured for and to the token service that registry names (a
// host the registry redirects to gets none, whatever it asks), and bodies read whole are bounded.
// Nothing here trusts what a registry says a digest is: callers verify content against the digest they asked.
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { pipeline, Transform, type Readable } from 'node:stream';
import fetch, { type Headers, type RequestInit } from 'node-fetch';
import { dockerConfigCredentials, type Credentials } from './docker-config.js';
import { deferredCaContext } from './extra-ca-certs.js';
import { registryHost } from './reference.js';
import { RegistryError } from '../errors/errors.js';
import { registryErrorCode } from './registry-errors.js';
import { parseChallenge } from './www-authenticate.js';

export interface RegistryClientOptions {
  /** Registries (host[:port]) that may be reached over plain HTTP besides loopback ones. */
  insecureRegistries?: string[];
  /** Per registry, base URLs of mirrors tried before it (e.g. {"docker.io": ["https://mirror.example"]}). */
  mirrors?: Record<string, string[]>;
  /** Credentials by registry name, or a mirror's host[:port] (default: the Docker config file's `auths`). */
  credentials?: (registry: string) => Credentials | undefined;
  /** Longest wait for response headers, and for the next body chunk. */
  timeoutMs?: number;
  /** Attempts after the first for a failed transient request (network error, timeout, 5xx, 429). */
  retries?: number;
  backoffMs?: number;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A request body, made anew for each attempt (an upload's). */
  body?: () => Buffer | Readable;
}

export interface Endpoint {
  /** The registry this endpoint serves (as in the reference). */
  registry: string;
  base: URL;
  mirror: boolean;
}

interface CachedToken {
  value: string;
  expires: number;
}

const MAX_REDIRECTS = 5;
/** Error pages and token answers are read whole, up to this; a redirect's or a 401's body is dropped after it. */
const MAX_SMALL_BODY = 1024 * 1024;

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class RegistryClient {
  private readonly tokens = new Map<string, CachedToken>();
  /** The auth scheme each host asked for, so later requests authenticate up front. */
  private readonly challenges = new Map<string, { scheme: string; params: Record<string, string> }>();
  private readonly insecure: Set<string>;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private httpsAgentMade?: https.Agent;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly backoffMs: number;

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.insecure = new Set(options.insecureRegistries ?? []);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retries = options.retries ?? 4;
    this.backoffMs = options.backoffMs ?? 200;
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgentMade?.destroy();
  }

  /** Made on the first TLS request: only then are deferred extra CA certificates read. */
  private get httpsAgent(): https.Agent {
    if (!this.httpsAgentMade) {
      const secureContext = deferredCaContext();
      this.httpsAgentMade = new https.Agent({ keepAlive: true, maxSockets: 16, ...(secureContext ? { secureContext } : {}) });
    }
    return this.httpsAgentMade;
  }

  private plainHttpAllowed(url: URL): boolean {
    return isLoopback(url.hostname) || this.insecure.has(url.host);
  }

  /** Mirrors first, then the registry itself. */
  endpoints(registry: string): Endpoint[] {
    const mirrors = (this.options.mirrors?.[registry] ?? []).map((base) => {
      const url = new URL(base.endsWith('/') ? base : `${base}/`);
      if (url.protocol === 'http:' && !this.plainHttpAllowed(url)) {
        throw new RegistryError('insecure', `mirror ${url.host} is plain HTTP: name it with --insecure-registry`);
      }
      return { registry, base: url, mirror: true };
    });
    const host = registryHost(registry);
    const probe = new URL(`http://${host}/`);
    const scheme = this.plainHttpAllowed(probe) ? 'http' : 'https';
    return [...mirrors, { registry, base: new URL(`${scheme}://${host}/`), mirror: false }];
  }

  /** Backoff before attempt `attempt` (1-based): exponential with jitter. */
  backoff(attempt: number): Promise<void> {
    return sleep(this.backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random() / 2));
  }

  /**
   * One request to the distribution API with auth and redirects handled; retried with backoff while it fails
   * transiently. The caller consumes or discards the body.
   */
  async request(endpoint: Endpoint, path: string, scope: string, init: RequestOptions = {}): Promise<Response> {
    return this.retrying(() => this.requestOnce(endpoint, path, scope, init));
  }

  /** Runs `attempt` again, with backoff, while it fails transiently, at most `retries` more times. */
  private async retrying<T>(attempt: () => Promise<T>): Promise<T> {
    for (let attempts = 1; ; attempts++) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof RegistryError && error.transient)) throw error;
        if (attempts > this.retries) throw error.tried(attempts);
        await this.backoff(attempts);
      }
    }
  }

  private async requestOnce(endpoint: Endpoint, path: string, scope: string, init: RequestOptions): Promise<Response> {
    const url = new URL(`v2/${path}`, endpoint.base);
    let response = await this.send(url, init, await this.authorization(url.host, scope, endpoint));
    if (response.status === 401) {
      refuseForeignChallenge(url, response);
      const header = response.headers.get('www-authenticate');
      response.discard();
      const challenge = header ? parseChallenge(header) : undefined;
      if (!challenge) throw new RegistryError('unauthorized', `${url.host} refused access (401) without an auth challenge`);
      this.challenges.set(url.host, challenge);
      this.tokens.delete(this.tokenKey(url.host, scope));
      response = await this.send(url, init, await this.authorization(url.host, scope, endpoint));
      if (response.status === 401) refuseForeignChallenge(url, response);
      if (response.status === 401 || response.status === 403) {
        response.discard();
        throw new RegistryError('unauthorized', `unauthorized: ${url.host} refused the credentials${this.credentialsFor(endpoint) ? '' : ' (none configured)'}`);
      }
    }
    if (response.status >= 500 || response.status === 429 || response.status === 408) {
      response.discard();
      throw new RegistryError('unreachable', `${url.host} answered ${response.status} ${response.statusText}`, true);
    }
    return response;
  }

  /** A GET/HEAD following redirects by hand: Authorization goes to the registry, never to where it redirects. */
  private async send(url: URL, init: RequestOptions, authorization: string | undefined): Promise<Response> {
    let target = url;
    let headers: Record<string, string> = { ...init.headers, ...(authorization ? { authorization } : {}) };
    for (let hop = 0; ; hop++) {
      if (target.protocol === 'http:' && !this.plainHttpAllowed(target)) {
        throw new RegistryError('insecure', `refusing plain HTTP to ${target.host}: name it with --insecure-registry`);
      }
      const response = await this.fetchWithTimeout(target, { method: init.method ?? 'GET', headers, redirect: 'manual', ...(init.body ? { body: init.body() } : {}) });
      const location = response.headers.get('location');
      if (response.status < 300 || response.status >= 400 || !location) return response;
      response.discard();
      if (hop >= MAX_REDIRECTS) throw new RegistryError('protocol', `${url.host}: too many redirects`);
      target = redirectTarget(location, target, url.host);
      const { authorization: _dropped, ...rest } = headers;
      headers = rest;
    }
  }

  /** fetch with a deadline for the headers; the body's idle timeout is `watchBody`'s job. */
  private async fetchWithTimeout(url: URL, init: RequestInit): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      const response = await fetch(url.href, {
        ...init,
        signal: controller.signal,
        agent: url.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
      });
      clearTimeout(timer);
      return watchedResponse(response, url, controller, this.timeoutMs);
    } catch (error) {
      clearTimeout(timer);
      if (error instanceof RegistryError) throw error;
      const cause = (error as { cause?: { code?: string }; code?: string });
      const code = cause.code ?? cause.cause?.code;
      if (code && /CERT|ERR_TLS/.test(code)) {
        // Not transient: retrying cannot make a certificate trusted.
        const reason = /reason: (.*)$/.exec((error as Error).message)?.[1] ?? code;
        throw new RegistryError('unreachable', `cannot reach ${url.host}: TLS certificate not trusted: ${reason} (${code}; a private CA's certificate goes in NODE_EXTRA_CA_CERTS)`);
      }
      const why = controller.signal.aborted ? `no answer within ${this.timeoutMs / 1000}s` : code ?? (error as Error).message;
      throw new RegistryError('unreachable', `cannot reach ${url.host}: ${why}`, true);
    }
  }

  private tokenKey(host: string, scope: string): string {
    return `${host} ${scope}`;
  }

  /** A mirror is another party: it gets the credentials filed under its own host, never the registry's. */
  private credentialsFor(endpoint: Endpoint): Credentials | undefined {
    const name = endpoint.mirror ? endpoint.base.host : endpoint.registry;
    return this.options.credentials ? this.options.credentials(name) : dockerConfigCredentials(name);
  }

  private async authorization(host: string, scope: string, endpoint: Endpoint): Promise<string | undefined> {
    const challenge = this.challenges.get(host);
    if (!challenge) return undefined;
    const credentials = this.credentialsFor(endpoint);
    if (challenge.scheme === 'basic') {
      return credentials ? `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` : undefined;
    }
    if (challenge.scheme !== 'bearer') throw new RegistryError('unauthorized', `${host} asks for unsupported auth scheme ${challenge.scheme}`);
    const key = this.tokenKey(host, scope);
    const cached = this.tokens.get(key);
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.value}`;
    const token = await this.fetchToken(host, challenge.params, scope, credentials);
    this.tokens.set(key, token);
    return `Bearer ${token.value}`;
  }

  private async fetchToken(host: string, params: Record<string, string>, scope: string, credentials: Credentials | undefined): Promise<CachedToken> {
    if (!params.realm) throw new RegistryError('unauthorized', `${host} sent a bearer challenge without a realm`);
    let realm: URL;
    try {
      realm = new URL(params.realm);
    } catch {
      throw new RegistryError('protocol', `${host} named a token service that is not a URL`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') throw new RegistryError('protocol', `${host} named a token service that is not HTTP(S)`);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', scope);
    if (realm.protocol === 'http:' && !this.plainHttpAllowed(realm)) {
      throw new RegistryError('insecure', `refusing plain HTTP to token service ${realm.host}`);
    }
    const started = Date.now();
    const response = await this.retrying(async () => {
      const answer = await this.tokenRequest(realm, credentials);
      if (answer.status < 500) return answer;
      answer.discard();
      throw new RegistryError('unreachable', `token service ${realm.host} answered ${answer.status}`, true);
    });
    let text: string;
    try {
      text = await response.text(MAX_SMALL_BODY);
    } catch {
      throw new RegistryError('protocol', `token service ${realm.host} answered more than ${MAX_SMALL_BODY} bytes`);
    }
    if (response.status === 401 || response.status === 403) {
      throw new RegistryError('unauthorized', `unauthorized: token service ${realm.host} refused ${credentials ? 'the credentials' : 'anonymous access'}`);
    }
    if (response.status !== 200) throw new RegistryError('unauthorized', `token service ${realm.host} answered ${response.status}${registryErrorCode(text) ? ` (${registryErrorCode(text)})` : ''}`);
    let body: { token?: string; access_token?: string; expires_in?: number };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new RegistryError('protocol', `token service ${realm.host} answered something that is not JSON`);
    }
    const value = body.token ?? body.access_token;
    if (!value) throw new RegistryError('protocol', `token service ${realm.host} answered without a token`);
    const lifetime = Math.max(10, body.expires_in ?? 60);
    return { value, expires: started + (lifetime - 5) * 1000 };
  }

  /**
   * A GET of the token service following redirects by hand: the credentials go to the realm's own origin only,
   * and a redirect from HTTPS to plain HTTP (or to plain HTTP that is not allowed) is refused.
   */
  private async tokenRequest(realm: URL, credentials: Credentials | undefined): Promise<Response> {
    const basic = credentials && `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    let target = realm;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = basic && target.origin === realm.origin ? { authorization: basic } : {};
      const response = await this.fetchWithTimeout(target, { headers, redirect: 'manual' });
      const location = response.headers.get('location');
      if (response.status < 300 || response.status >= 400 || !location) return response;
      response.discard();
      if (hop >= MAX_REDIRECTS) throw new RegistryError('protocol', `token service ${realm.host}: too many redirects`);
      const next = redirectTarget(location, target, `token service ${realm.host}`);
      if (next.protocol === 'http:' && (target.protocol === 'https:' || !this.plainHttpAllowed(next))) {
        throw new RegistryError('insecure', `token service ${realm.host} redirected to plain HTTP (${next.host}): refused`);
      }
      target = next;
    }
  }
}

/** Where a redirect leads: only HTTP(S) URLs are followed. */
function redirectTarget(location: string, from: URL, who: string): URL {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new RegistryError('protocol', `${who} redirected to something that is not a URL`);
  }
  if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new RegistryError('protocol', `${who} redirected to a ${next.protocol} URL`);
  return next;
}

/**
 * A 401 from where the registry redirected a request is not the registry asking for credentials: that host gets
 * none, and its challenge is not taken as the registry's.
 */
function refuseForeignChallenge(url: URL, response: Response): void {
  if (response.url.origin === url.origin) return;
  response.discard();
  throw new RegistryError('unauthorized', `unauthorized: ${url.host} redirected to ${response.url.host}, which asks for credentials; runbox sends credentials only to ${url.host} and the token service it names`);
}

/** A registry's answer; its body aborts the request when it stalls for the client's timeout. */
export interface Response {
  /** Where the answer came from (after redirects). */
  url: URL;
  status: number;
  statusText: string;
  headers: Headers;
  body: Readable;
  /** The whole body as text; rejects, dropping the body, when it is longer than `maxBytes`. */
  text(maxBytes: number): Promise<string>;
  /** Reads and drops the rest of the body (small bodies: error pages, redirects); a long one is cut off. */
  discard(): void;
}

function watchedResponse(response: Awaited<ReturnType<typeof fetch>>, url: URL, controller: AbortController, timeoutMs: number): Response {
  let timer = setTimeout(() => controller.abort(), timeoutMs);
  const watchdog = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(), timeoutMs);
      callback(null, chunk);
    },
  });
  const body = response.body as Readable | null;
  if (body) {
    pipeline(body, watchdog, () => clearTimeout(timer));
  } else {
    clearTimeout(timer);
    watchdog.end();
  }
  return {
    url,
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
    body: watchdog,
    async text(maxBytes: number) {
      const chunks: Buffer[] = [];
      let length = 0;
      for await (const chunk of watchdog) {
        length += (chunk as Buffer).length;
        if (length > maxBytes) {
          watchdog.destroy();
          throw new Error(`body longer than ${maxBytes} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
      return Buffer.concat(chunks).toString('utf8');
    },
    discard() {
      let length = 0;
      watchdog.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length > MAX_SMALL_BODY) watchdog.destroy();
      });
      watchdog.on('error', () => {});
    },
  };
}

/** A failed response as a RegistryError a user can act on. */
export async function failure(response: Response, what: string): Promise<RegistryError> {
  const text = await response.text(MAX_SMALL_BODY).catch(() => '');
  const code = registryErrorCode(text);
  if (response.status === 404) return new RegistryError('not-found', `${what} not found${code ? ` (${code})` : ''}`);
  if (response.status === 401 || response.status === 403) return new RegistryError('unauthorized', `unauthorized${code ? ` (${code})` : ''}`);
  return new RegistryError('protocol', `${what}: registry answered ${response.status}${code ? ` (${code})` : ''}`);
}
