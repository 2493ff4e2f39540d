import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, TestEnv } from './helpers/runbox.js';
import { FIXTURE_OCI, push, startFaultProxy, startRegistry, startTokenServer, type Registry } from './helpers/registry.js';
import { craftedLayer, craftImage, startServer, startTinyRegistry, type TestServer } from './helpers/tiny-registry.js';

/** A DOCKER_CONFIG directory whose config.json holds `auths` for `host`. */
function dockerConfig(dir: string, host: string, username: string, password: string, style: 'auth' | 'fields' = 'auth'): NodeJS.ProcessEnv {
  mkdirSync(dir, { recursive: true });
  const entry = style === 'auth' ? { auth: Buffer.from(`${username}:${password}`).toString('base64') } : { username, password };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [host]: entry } }));
  return { ...process.env, DOCKER_CONFIG: dir };
}

/** A storage directory with the busybox fixture pushed as busybox:latest (by an unauthenticated registry). */
async function seeded(t: Parameters<typeof startRegistry>[0]): Promise<Registry> {
  const open = await startRegistry(t);
  push(open, FIXTURE_OCI, 'latest', 'private/busybox:latest');
  return open;
}

test('basic auth (htpasswd): credentials from the Docker config file; wrong ones are refused without being printed', async (t) => {
  const env = new TestEnv(t);
  const open = await seeded(t);
  const registry = await startRegistry(t, { storage: open.storage, auth: { htpasswd: { username: 'alice', password: 's3cret-basic' } } });
  const ref = `${registry.host}/private/busybox:latest`;

  const anonymous = await env.run(['image', 'pull', '--store', join(env.dir, 's1'), ref], { env: { ...process.env, DOCKER_CONFIG: join(env.dir, 'none') } });
  t.is(anonymous.code, 1);
  t.is(errorMessage(anonymous.stderr), `image ${ref}: unauthorized: ${registry.host} refused the credentials (none configured)`);

  const wrong = await env.run(['image', 'pull', '--store', join(env.dir, 's2'), ref], { env: dockerConfig(join(env.dir, 'wrong'), registry.host, 'alice', 'not-the-password') });
  t.is(wrong.code, 1);
  t.is(errorMessage(wrong.stderr), `image ${ref}: unauthorized: ${registry.host} refused the credentials`);
  t.false(wrong.stderr.includes('not-the-password'));
  t.false(wrong.stderr.includes(Buffer.from('alice:not-the-password').toString('base64')));

  const right = await env.run(['run', '--image', ref, '--store', join(env.dir, 's3'), '--rm', env.id(), '--', 'echo', 'basic-ok'], {
    env: dockerConfig(join(env.dir, 'right'), registry.host, 'alice', 's3cret-basic', 'fields'),
  });
  t.is(right.code, 0, right.stderr);
  t.is(right.stdout, 'basic-ok\n');
});

test('bearer tokens: fetched from the realm of the challenge with the configured credentials, one per scope and reused', async (t) => {
  const env = new TestEnv(t);
  const open = await seeded(t);
  const tokens = await startTokenServer(t, { username: 'bob', password: 'token-pass' });
  const registry = await startRegistry(t, { storage: open.storage, auth: { token: tokens } });
  const ref = `${registry.host}/private/busybox:latest`;

  const wrong = await env.run(['image', 'pull', '--store', join(env.dir, 's1'), ref], { env: dockerConfig(join(env.dir, 'wrong'), registry.host, 'bob', 'nope') });
  t.is(wrong.code, 1);
  t.is(errorMessage(wrong.stderr), `image ${ref}: unauthorized: token service 127.0.0.1:${new URL(tokens.realm).port} refused the credentials`);

  const issuedBefore = tokens.issued.length;
  const pulled = await env.run(['image', 'pull', '--store', join(env.dir, 's2'), ref], { env: dockerConfig(join(env.dir, 'right'), registry.host, 'bob', 'token-pass') });
  t.is(pulled.code, 0, pulled.stderr);
  // Manifest, config and layer all went through with one token for the repository's pull scope.
  t.deepEqual(tokens.issued.slice(issuedBefore), ['repository:private/busybox:pull']);

  const ran = await env.run(['run', '--image', ref, '--store', join(env.dir, 's2'), '--rm', env.id(), '--', 'echo', 'bearer-ok']);
  t.is(ran.stdout, 'bearer-ok\n', ran.stderr);
});

test('a cached bearer token the registry stops accepting is replaced after its 401', async (t) => {
  const env = new TestEnv(t);
  const open = await seeded(t);
  const tokens = await startTokenServer(t, { username: 'bob', password: 'token-pass' });
  const registry = await startRegistry(t, { storage: open.storage, auth: { token: tokens } });
  // The manifest goes through with the first token; the first blob request then meets a 401 with the registry's
  // challenge (a revoked token), so the client must drop its cached token and get another.
  const proxy = await startFaultProxy(t, registry.host);
  proxy.fault = { kind: 'unauthorized', times: 1 };
  const pulled = await env.run(['image', 'pull', '--store', join(env.dir, 's'), `${proxy.host}/private/busybox:latest`], {
    env: dockerConfig(join(env.dir, 'cfg'), proxy.host, 'bob', 'token-pass'),
  });
  t.is(pulled.code, 0, pulled.stderr);
  t.deepEqual(tokens.issued, ['repository:private/busybox:pull', 'repository:private/busybox:pull']);
  t.deepEqual(proxy.requests.filter((r) => r.path.includes('/blobs/')).map((r) => r.status), [401, 200, 200]);
});

/** Makes `registry` answer 401 with `challenge` to any /v2/ request whose Authorization is not `accepted`. */
function requireAuthorization(registry: TestServer, accepted: string, challenge: string): void {
  registry.handlers.unshift((request, response) => {
    if (!request.url?.startsWith('/v2/') || request.headers.authorization === accepted) return false;
    response.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    return true;
  });
}

/** Makes `from` redirect its blob downloads to `to` (the same path), as registries send them to storage. */
function redirectBlobs(from: TestServer, to: TestServer): void {
  from.handlers.unshift((request, response) => {
    if (!/\/blobs\/sha256:/.test(request.url ?? '')) return false;
    response.writeHead(307, { location: `${to.url}${request.url}` }).end();
    return true;
  });
}

/** A token service: `basic` (or anyone, when undefined) gets `token`. */
function tokenService(server: TestServer, path: string, token: string, basic?: string): void {
  server.handlers.push((request, response) => {
    if (!request.url?.startsWith(path)) return false;
    if (basic !== undefined && request.headers.authorization !== basic) {
      response.writeHead(401, { 'content-type': 'application/json' }).end('{}');
      return true;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }));
    return true;
  });
}

const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

test('a host the registry redirects to gets no credentials, whatever it asks for: a bearer realm of its own', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const image = craftImage(registry, 'private/app', '1', [await craftedLayer([{ header: { name: 'a', type: 'file' }, content: 'a' }])]);
  const credentials = basic('alice', 'redirected-secret');
  const storage = await startServer(t);
  requireAuthorization(storage, 'Bearer from-storage', `Bearer realm="${storage.url}/token",service="storage"`);
  tokenService(storage, '/token', 'from-storage');
  redirectBlobs(registry, storage);
  requireAuthorization(registry, credentials, 'Basic realm="registry"');
  const pulled = await env.run(['image', 'pull', '-q', '--store', join(env.dir, 's'), image.ref], { env: dockerConfig(join(env.dir, 'cfg'), registry.host, 'alice', 'redirected-secret') });
  t.is(pulled.code, 1);
  t.is(errorMessage(pulled.stderr), `image ${image.ref}: unauthorized: ${registry.host} redirected to ${storage.host}, which asks for credentials; runbox sends credentials only to ${registry.host} and the token service it names`);
  t.deepEqual(storage.requests.filter((r) => r.authorization !== undefined), [], 'the redirect target saw no Authorization at all');
  t.false(pulled.stderr.includes('redirected-secret'));
});

test('a host the registry redirects to cannot switch the registry to basic auth: the password never goes to a token-auth registry', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const image = craftImage(registry, 'private/app', '1', [await craftedLayer([{ header: { name: 'a', type: 'file' }, content: 'a' }])]);
  const auth = await startServer(t);
  tokenService(auth, '/token', 'good-token', basic('bob', 'token-secret'));
  const storage = await startServer(t);
  requireAuthorization(storage, 'never', 'Basic realm="storage"');
  redirectBlobs(registry, storage);
  requireAuthorization(registry, 'Bearer good-token', `Bearer realm="${auth.url}/token",service="registry"`);
  const pulled = await env.run(['image', 'pull', '-q', '--store', join(env.dir, 's'), image.ref], { env: dockerConfig(join(env.dir, 'cfg'), registry.host, 'bob', 'token-secret') });
  t.is(pulled.code, 1);
  t.deepEqual(registry.requests.filter((r) => r.authorization?.startsWith('Basic')), [], 'the registry never got the password');
  t.deepEqual(storage.requests.filter((r) => r.authorization !== undefined), []);
  t.is(errorMessage(pulled.stderr), `image ${image.ref}: unauthorized: ${registry.host} redirected to ${storage.host}, which asks for credentials; runbox sends credentials only to ${registry.host} and the token service it names`);
});

test('a token service that redirects: credentials only to its own origin, never over plain HTTP after HTTPS', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const image = craftImage(registry, 'private/app', '1', [await craftedLayer([{ header: { name: 'a', type: 'file' }, content: 'a' }])]);
  const secret = basic('carol', 'token-redirect-secret');
  const config = dockerConfig(join(env.dir, 'cfg'), registry.host, 'carol', 'token-redirect-secret');

  // Another port of the same host is another origin: it is asked without the credentials.
  const realm = await startServer(t);
  const elsewhere = await startServer(t);
  realm.handlers.push((request, response) => {
    response.writeHead(307, { location: `${elsewhere.url}${request.url}` }).end();
    return true;
  });
  tokenService(elsewhere, '/token', 'from-elsewhere');
  requireAuthorization(registry, 'Bearer from-elsewhere', `Bearer realm="${realm.url}/token",service="registry"`);
  const pulled = await env.run(['image', 'pull', '-q', '--store', join(env.dir, 's1'), image.ref], { env: config });
  t.is(pulled.code, 0, pulled.stderr);
  t.is(realm.requests[0]?.authorization, secret, 'the realm the registry named gets the credentials');
  t.true(elsewhere.requests.length > 0);
  t.deepEqual(elsewhere.requests.filter((r) => r.authorization !== undefined), [], 'where it redirected got none');

  // From HTTPS to plain HTTP (even on loopback): refused, not followed.
  const secure = await startServer(t, { tls: true });
  const plain = await startServer(t, { address: '127.0.0.2' });
  secure.handlers.push((request, response) => {
    response.writeHead(307, { location: `${plain.url}${request.url}` }).end();
    return true;
  });
  tokenService(plain, '/token', 'from-plain');
  registry.handlers.shift();
  requireAuthorization(registry, 'Bearer from-plain', `Bearer realm="${secure.url}/token",service="registry"`);
  const downgraded = await env.run(['image', 'pull', '-q', '--store', join(env.dir, 's2'), image.ref], { env: { ...config, NODE_EXTRA_CA_CERTS: secure.certificate! } });
  t.is(downgraded.code, 1);
  t.is(errorMessage(downgraded.stderr), `image ${image.ref}: token service ${secure.host} redirected to plain HTTP (${plain.host}): refused`);
  t.is(secure.requests[0]?.authorization, secret);
  t.deepEqual(plain.requests, [], 'the plain HTTP host was never asked');
});
