import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, RUNBOX, TestEnv } from './helpers/runbox.js';
import { FIXTURE_OCI, push, startFaultProxy, startRegistry } from './helpers/registry.js';

test('a mirror is tried first; a mirror without the image falls back to the registry', async (t) => {
  const env = new TestEnv(t);
  const origin = await startRegistry(t);
  push(origin, FIXTURE_OCI, 'latest', 'busybox:latest');
  const mirror = await startRegistry(t, { storage: origin.storage });
  const mirrorProxy = await startFaultProxy(t, mirror.host);

  // The registry named in the reference is down: only the mirror can serve it.
  const viaMirror = await env.run(['image', 'pull', '-q', '--store', join(env.dir, 's1'), '--registry-mirror', `127.0.0.1:1=http://${mirrorProxy.host}`, '127.0.0.1:1/busybox']);
  t.is(viaMirror.code, 0, viaMirror.stderr);
  t.true(mirrorProxy.requests.some((r) => r.path === '/v2/busybox/manifests/latest' && r.status === 200));

  const empty = await startRegistry(t);
  const emptyProxy = await startFaultProxy(t, empty.host);
  const fallback = await env.run(['image', 'pull', '-q', '--store', join(env.dir, 's2'), '--registry-mirror', `${origin.host}=http://${emptyProxy.host}`, `${origin.host}/busybox`]);
  t.is(fallback.code, 0, fallback.stderr);
  t.true(emptyProxy.requests.some((r) => r.status === 404), 'the mirror was asked first');
});

test('a mirror gets only the credentials filed under its own host, never those of the registry it stands in for', async (t) => {
  const env = new TestEnv(t);
  const open = await startRegistry(t);
  push(open, FIXTURE_OCI, 'latest', 'private/busybox:latest');
  const origin = await startRegistry(t, { storage: open.storage, auth: { htpasswd: { username: 'alice', password: 'origin-pass' } } });
  const mirror = await startRegistry(t, { storage: open.storage, auth: { htpasswd: { username: 'mirror-user', password: 'mirror-pass' } } });
  const mirrorProxy = await startFaultProxy(t, mirror.host);
  const ref = `${origin.host}/private/busybox:latest`;
  const withAuths = (name: string, auths: Record<string, string>): NodeJS.ProcessEnv => {
    const dir = join(env.dir, name);
    mkdirSync(dir);
    const entries = Object.fromEntries(Object.entries(auths).map(([host, userPass]) => [host, { auth: Buffer.from(userPass).toString('base64') }]));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: entries }));
    return { ...process.env, DOCKER_CONFIG: dir };
  };
  const pull = (store: string, auths: NodeJS.ProcessEnv) =>
    env.run(['image', 'pull', '-q', '--store', join(env.dir, store), '--registry-mirror', `${origin.host}=http://${mirrorProxy.host}`, ref], { env: auths });

  // Credentials for the registry only: the mirror challenges, gets no Authorization, and the registry serves it.
  const originOnly = await pull('s1', withAuths('origin-only', { [origin.host]: 'alice:origin-pass' }));
  t.is(originOnly.code, 0, originOnly.stderr);
  t.true(mirrorProxy.requests.length > 0, 'the mirror was asked first');
  t.false(mirrorProxy.requests.some((r) => r.authorization), 'the registry\'s credentials went to the mirror');

  // Credentials filed under the mirror's host: the mirror serves the image with them.
  mirrorProxy.requests.length = 0;
  const both = await pull('s2', withAuths('both', { [origin.host]: 'alice:origin-pass', [mirrorProxy.host]: 'mirror-user:mirror-pass' }));
  t.is(both.code, 0, both.stderr);
  t.true(mirrorProxy.requests.some((r) => r.authorization && r.path === '/v2/private/busybox/manifests/latest' && r.status === 200));
});

test('plain HTTP to a registry that is not on loopback needs --insecure-registry', async (t) => {
  const env = new TestEnv(t);
  const refused = await env.run(['image', 'pull', '--store', join(env.dir, 's'), '--registry-mirror', 'docker.io=http://mirror.example', 'busybox']);
  t.is(refused.code, 1);
  t.is(errorMessage(refused.stderr), 'image docker.io/library/busybox:latest: mirror mirror.example is plain HTTP: name it with --insecure-registry');
});

test('progress: per-layer lines and a total on a terminal, nothing when piped', async (t) => {
  const env = new TestEnv(t);
  const registry = await startRegistry(t);
  push(registry, FIXTURE_OCI, 'latest', 'busybox:latest');
  const ref = `${registry.host}/busybox`;
  // script(1) gives the command a pseudo-terminal and copies what it writes.
  const command = [RUNBOX, 'image', 'pull', '--store', join(env.dir, 'tty'), ref].join(' ');
  const tty = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8' });
  t.is(tty.status, 0, tty.stdout);
  t.regex(tty.stdout, /[0-9a-f]{12}: (done|[\d.]+ [kM]?B \/ [\d.]+ [kM]?B)/);
  t.regex(tty.stdout, /total: [\d.]+ MB \/ [\d.]+ MB/);

  const piped = await env.run(['image', 'pull', '--store', join(env.dir, 'pipe'), ref]);
  t.is(piped.code, 0, piped.stderr);
  t.is(piped.stderr, '');
  t.regex(piped.stdout, /^127\.0\.0\.1:\d+\/busybox:latest: sha256:[0-9a-f]{64}\n$/);
});

test('a registry whose certificate NODE_EXTRA_CA_CERTS vouches for is trusted, and only then', async (t) => {
  const env = new TestEnv(t);
  const secure = await startRegistry(t, { tls: true });
  push(secure, FIXTURE_OCI, 'latest', 'busybox:latest');
  const { NODE_EXTRA_CA_CERTS: _machine, ...base } = process.env;
  // A loopback registry is reached over plain HTTP; as a mirror with an https URL, it is reached over TLS.
  const pull = (store: string, extra: NodeJS.ProcessEnv) =>
    env.run(['image', 'pull', '-q', '--store', join(env.dir, store), '--registry-mirror', `127.0.0.1:1=https://${secure.host}`, '127.0.0.1:1/busybox'], { env: { ...base, ...extra } });

  const untrusted = await pull('s1', {});
  t.not(untrusted.code, 0);
  t.regex(untrusted.stderr, /mirrors tried first: cannot reach 127\.0\.0\.1:\d+: TLS certificate not trusted/);
  const trusted = await pull('s2', { NODE_EXTRA_CA_CERTS: secure.certificate! });
  t.is(trusted.code, 0, trusted.stderr);
});
