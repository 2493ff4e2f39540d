import test from 'ava';
import { spawnSync } from 'node:child_process';
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
