import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerConfigCredentials } from '../src/image/docker-config.js';
import { formatReference, parseReference, registryHost } from '../src/image/reference.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

test('references get Docker Hub defaults: registry, library/ and latest', (t) => {
  t.is(formatReference(parseReference('busybox')), 'docker.io/library/busybox:latest');
  t.is(formatReference(parseReference('busybox:1.36')), 'docker.io/library/busybox:1.36');
  t.is(formatReference(parseReference('user/app')), 'docker.io/user/app:latest');
  t.is(formatReference(parseReference('index.docker.io/library/busybox')), 'docker.io/library/busybox:latest');
  t.is(registryHost(parseReference('busybox').registry), 'registry-1.docker.io');
});

test('registries with ports, nested repositories, tags and digests', (t) => {
  t.deepEqual(parseReference('127.0.0.1:5000/a/b/c:v1.2-rc'), { registry: '127.0.0.1:5000', repository: 'a/b/c', tag: 'v1.2-rc' });
  t.deepEqual(parseReference('localhost/app'), { registry: 'localhost', repository: 'app', tag: 'latest' });
  t.deepEqual(parseReference(`ghcr.io/org/app@${DIGEST}`), { registry: 'ghcr.io', repository: 'org/app', digest: DIGEST });
  t.deepEqual(parseReference(`ghcr.io/org/app:1@${DIGEST}`), { registry: 'ghcr.io', repository: 'org/app', tag: '1', digest: DIGEST });
});

test('malformed references are refused with the reason', (t) => {
  t.throws(() => parseReference('Busybox'), { message: 'invalid image reference "Busybox": repository component "Busybox" is not valid (lowercase letters, digits, separators)' });
  t.throws(() => parseReference('busybox@sha256:1234'), { message: 'invalid image reference "busybox@sha256:1234": digest "sha256:1234" is malformed' });
  t.throws(() => parseReference('busybox:-bad'), { message: 'invalid image reference "busybox:-bad": tag "-bad" is not valid' });
  t.throws(() => parseReference(''), { message: /empty/ });
});

test('Docker config credentials: by host, Docker Hub under its v1 URL, auth or username/password fields', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-dockercfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'config.json');
  writeFileSync(path, JSON.stringify({
    auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hub:pass').toString('base64') },
      'registry.example:5000': { username: 'u', password: 'p' },
    },
  }));
  t.deepEqual(dockerConfigCredentials('docker.io', path), { username: 'hubuser', password: 'hub:pass' });
  t.deepEqual(dockerConfigCredentials('registry.example:5000', path), { username: 'u', password: 'p' });
  t.is(dockerConfigCredentials('other.example', path), undefined);
  t.is(dockerConfigCredentials('docker.io', join(dir, 'missing.json')), undefined);
});
