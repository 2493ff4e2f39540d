import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { MediaType } from '../src/image/media-types.js';
import { formatPlatform, hostPlatform } from '../src/image/platform.js';
import { errorMessage, TestEnv } from './helpers/runbox.js';
import { FIXTURE_OCI, multiArchLayout, push, startRegistry } from './helpers/registry.js';
import { craftedLayer, craftImage, startTinyRegistry } from './helpers/tiny-registry.js';

interface Listed {
  name: string;
  digest: string;
  manifest: string;
  config: string;
  platform: string;
  size: number;
}

function blobFiles(store: string): string[] {
  const dir = join(store, 'blobs', 'sha256');
  return existsSync(dir) ? readdirSync(dir).map((hex) => `sha256:${hex}`) : [];
}

test('image pull stores the busybox fixture, and run --image runs it with the image command replaced', async (t) => {
  const env = new TestEnv(t);
  const registry = await startRegistry(t);
  push(registry, FIXTURE_OCI, 'latest', 'fixture/busybox:1.0');
  const store = join(env.dir, 'store');
  const ref = `${registry.host}/fixture/busybox:1.0`;

  const pulled = await env.run(['image', 'pull', '--store', store, ref]);
  t.is(pulled.code, 0, pulled.stderr);
  t.regex(pulled.stdout, new RegExp(`^${ref.replace(/[.:/]/g, '\\$&')}: sha256:[0-9a-f]{64}\\n$`));

  const listed = await env.run(['image', 'ls', '--store', store, '--format', 'json']);
  const images = JSON.parse(listed.stdout) as Listed[];
  t.is(images.length, 1);
  t.is(images[0]!.name, ref);
  t.is(images[0]!.platform, 'linux/amd64');
  t.true(blobFiles(store).includes(images[0]!.config));

  const ran = await env.run(['run', '--image', ref, '--store', store, '--rm', env.id(), '--', 'sh', '-c', 'echo from-image; cat /etc/hostname']);
  t.is(ran.code, 0, ran.stderr);
  t.is(ran.stdout, 'from-image\nrunbox\n');
  t.deepEqual(readdirSync(join(store, 'bundles')), [], 'run --rm leaves no bundle');

  const status = await env.run(['run', '--image', ref, '--store', store, '--rm', env.id(), '--', 'sh', '-c', 'exit 7']);
  t.is(status.code, 7);
});

test('without --store, the store lives under an explicit --root, beside containers that list tells apart from it', async (t) => {
  const env = new TestEnv(t);
  const registry = await startRegistry(t);
  push(registry, FIXTURE_OCI, 'latest', 'fixture/busybox:1.0');
  const ref = `${registry.host}/fixture/busybox:1.0`;
  const { RUNBOX_STORE: _unset, ...environment } = process.env;

  t.is((await env.run(['image', 'pull', '-q', ref], { env: environment })).code, 0);
  const store = join(env.root, '.images');
  t.is((JSON.parse((await env.run(['image', 'ls', '--format', 'json'], { env: environment })).stdout) as Listed[])[0]?.name, ref);
  t.true(blobFiles(store).length > 0, `the blobs are in ${store}`);

  const { id } = await env.running(['sleep', '100']);
  const ran = await env.run(['run', '--image', ref, '--rm', env.id(), '--', 'echo', 'from-root-store'], { env: environment });
  t.is(ran.stdout, 'from-root-store\n', ran.stderr);
  const listed = JSON.parse((await env.run(['list', '--format', 'json'])).stdout) as { id: string }[];
  t.deepEqual(listed.map((container) => container.id), [id]);
  t.is((await env.run(['delete', '--force', id])).code, 0);
});

test('bundle --image makes a bundle runbox can run, with the image command as the process', async (t) => {
  const env = new TestEnv(t);
  const registry = await startRegistry(t);
  push(registry, FIXTURE_OCI, 'latest', 'busybox:latest');
  const store = join(env.dir, 'store');
  const bundle = join(env.dir, 'from-image');
  const made = await env.run(['bundle', '--store', store, '--image', `${registry.host}/busybox`, bundle]);
  t.is(made.code, 0, made.stderr);
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process: { args: string[]; env: string[] } };
  t.deepEqual(spec.process.args, ['/bin/sh']);
  t.true(spec.process.env.includes('PATH=/usr/sbin:/usr/bin:/sbin:/bin'));
  t.true(existsSync(join(bundle, 'rootfs', 'bin', 'busybox')));

  const notEmpty = await env.run(['bundle', '--store', store, '--image', `${registry.host}/busybox`, bundle]);
  t.is(notEmpty.code, 1);
  t.regex(errorMessage(notEmpty.stderr), /not empty/);
});

test('a multi-platform index: the host platform by default, --platform picks another, attestations are skipped', async (t) => {
  const env = new TestEnv(t);
  const registry = await startRegistry(t);
  const multi = multiArchLayout(t);
  push(registry, multi.layout, 'multi', 'multi:1', { all: true });
  const ref = `${registry.host}/multi:1`;

  const store = join(env.dir, 'store');
  const pulled = await env.run(['image', 'pull', '--store', store, '--format', 'json', ref]);
  t.is(pulled.code, 0, pulled.stderr);
  const [image] = JSON.parse(pulled.stdout) as Listed[];
  t.is(image!.manifest, multi.amd64);
  t.is(image!.platform, 'linux/amd64');
  t.false(blobFiles(store).includes(multi.attestation));
  const ran = await env.run(['run', '--image', ref, '--store', store, '--rm', env.id(), '--', 'echo', 'multi-ok']);
  t.is(ran.stdout, 'multi-ok\n', ran.stderr);

  const armStore = join(env.dir, 'arm-store');
  const arm = await env.run(['image', 'pull', '--store', armStore, '--platform', 'linux/arm64', '--format', 'json', ref]);
  t.is(arm.code, 0, arm.stderr);
  const [armImage] = JSON.parse(arm.stdout) as Listed[];
  t.is(armImage!.manifest, multi.arm64);
  t.is(armImage!.platform, 'linux/arm64/v8');

  const none = await env.run(['image', 'pull', '--store', join(env.dir, 'none'), '--platform', 'linux/s390x', ref]);
  t.is(none.code, 1);
  t.is(errorMessage(none.stderr), `image ${ref}: no manifest for platform linux/s390x (the index has linux/arm64/v8, linux/amd64)`);
  t.deepEqual(blobFiles(join(env.dir, 'none')), []);
});

test('unknown tags, unknown repositories and unreachable registries are one-line errors naming the image', async (t) => {
  const env = new TestEnv(t);
  const registry = await startRegistry(t);
  push(registry, FIXTURE_OCI, 'latest', 'busybox:latest');
  const store = join(env.dir, 'store');

  const tag = await env.run(['image', 'pull', '--store', store, `${registry.host}/busybox:nope`]);
  t.is(tag.code, 1);
  t.is(tag.stdout, '');
  t.regex(errorMessage(tag.stderr), new RegExp(`^image ${registry.host}/busybox:nope: manifest nope not found \\(MANIFEST_UNKNOWN`));
  t.is(tag.stderr.trim().split('\n').length, 1);

  const repo = await env.run(['image', 'pull', '--store', store, `${registry.host}/nothing/here`]);
  t.regex(errorMessage(repo.stderr), /^image .*\/nothing\/here:latest: manifest latest not found \((NAME|MANIFEST)_UNKNOWN/);

  const closed = await env.run(['image', 'pull', '--store', store, '127.0.0.1:1/busybox']);
  t.is(errorMessage(closed.stderr), 'image 127.0.0.1:1/busybox:latest: cannot reach 127.0.0.1:1: ECONNREFUSED (tried 5 times)');

  const bad = await env.run(['image', 'pull', '--store', store, 'Bad/Name']);
  t.regex(errorMessage(bad.stderr), /invalid image reference "Bad\/Name"/);

  const remote = await env.run(['image', 'pull', '--store', store, 'registry.invalid.example/busybox']);
  t.regex(errorMessage(remote.stderr), /^image registry\.invalid\.example\/busybox:latest: cannot reach registry\.invalid\.example/);
  t.deepEqual(blobFiles(store), []);
});

test('image rm frees what no other image uses; prune drops what nothing references; a quota evicts the least recently used', async (t) => {
  const env = new TestEnv(t);
  const registry = await startRegistry(t);
  push(registry, FIXTURE_OCI, 'latest', 'one:latest');
  const multi = multiArchLayout(t);
  push(registry, multi.layout, 'multi', 'two:latest', { all: true });
  const store = join(env.dir, 'store');
  const one = `${registry.host}/one:latest`;
  const two = `${registry.host}/two:latest`;

  t.is((await env.run(['image', 'pull', '-q', '--store', store, one])).code, 0);
  t.is((await env.run(['image', 'pull', '-q', '--store', store, '--platform', 'linux/arm64', two])).code, 0);
  const before = JSON.parse((await env.run(['image', 'ls', '--store', store, '--format', 'json'])).stdout) as Listed[];
  t.deepEqual(before.map((i) => i.name), [one, two]);

  const removed = await env.run(['image', 'rm', '--store', store, one]);
  t.is(removed.stdout, `removed ${one}\n`, removed.stderr);
  const blobs = blobFiles(store);
  t.true(blobs.includes(before[1]!.config), 'the other image keeps its blobs');
  t.true(blobs.includes(before[1]!.manifest));
  t.false(blobs.includes(before[0]!.manifest), 'the removed image\'s own blobs are gone');
  t.false(blobs.includes(before[0]!.config));
  t.is(blobs.length, 4, 'index, manifest, config and the shared layer');

  const unknown = await env.run(['image', 'rm', '--store', store, one]);
  t.is(errorMessage(unknown.stderr), `image ${one}: not in the store`);

  // Two images that share their layer; a quota a bit above one image's size keeps only the newest.
  const quota = String(before[0]!.size + 100);
  t.is((await env.run(['image', 'pull', '-q', '--store', store, '--quota', quota, one])).code, 0);
  const after = JSON.parse((await env.run(['image', 'ls', '--store', store, '--format', 'json'])).stdout) as Listed[];
  t.deepEqual(after.map((i) => i.name), [one], 'the least recently used image was evicted');
  t.false(blobFiles(store).includes(before[1]!.digest));

  const pruned = await env.run(['image', 'prune', '--store', store, '--format', 'json']);
  t.deepEqual(JSON.parse(pruned.stdout), { freed: 0 });
  const run = await env.run(['run', '--image', one, '--store', store, '--rm', env.id(), '--', 'true']);
  t.is(run.code, 0, run.stderr);
});

test('an index that holds only a nested index says so, instead of listing the platform it did not follow', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const image = craftImage(registry, 'nested', 'inner', [await craftedLayer([{ header: { name: 'a', type: 'file' }, content: 'a' }])]);
  const platform = hostPlatform();
  const inner = registry.manifest('nested', { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, ...image.manifest, platform }] });
  registry.manifest('nested', { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociIndex, digest: inner.digest, size: inner.size, platform }] }, 'outer');
  const ref = `${registry.host}/nested:outer`;
  const pulled = await env.run(['image', 'pull', '-q', '--store', join(env.dir, 'store'), ref]);
  t.is(pulled.code, 1);
  t.is(errorMessage(pulled.stderr), `image ${ref}: no manifest for platform ${formatPlatform(platform)} (the index has none; nested indexes are not followed: ${inner.digest})`);
});

test('a registry that never answers: the error says how many times it was tried', async (t) => {
  const env = new TestEnv(t);
  const sockets: Socket[] = [];
  const silent = createServer((socket) => void sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const host = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const pulled = await env.run(['image', 'pull', '-q', '--store', join(env.dir, 'store'), '--registry-timeout', '1', `${host}/busybox`]);
  t.is(pulled.code, 1);
  t.is(errorMessage(pulled.stderr), `image ${host}/busybox:latest: cannot reach ${host}: no answer within 1s (tried 5 times)`);
});
