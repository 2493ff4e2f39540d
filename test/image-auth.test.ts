import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, TestEnv } from './helpers/runbox.js';
import { FIXTURE_OCI, push, startFaultProxy, startRegistry, startTokenServer, type Registry } from './helpers/registry.js';

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
