// The fetch core of lazy loading against a real registry, on eStargz images written by upstream's ctr-remote: the
// TOC from one tail request, every chunk verified before it is served, one fetch per chunk, retries then EIO,
// the legacy footer, the fallback for layers that are not eStargz, token refresh and the background fetch.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { BlobFetcher } from '../src/image/blob-fetcher.js';
import { ContentStore } from '../src/image/content-store.js';
import type { Descriptor } from '../src/image/image-index.js';
import { fetchManifest, parseManifest } from '../src/image/manifest.js';
import { RegistryClient, type RegistryClientOptions } from '../src/image/registry-client.js';
import { BackgroundFetch } from '../src/image/lazy/background-fetch.js';
import { ChunkFetcher, LazyReadError } from '../src/image/lazy/chunk-fetcher.js';
import { makeFooter } from '../src/image/lazy/estargz-footer.js';
import { TOC_DIGEST_ANNOTATION } from '../src/image/lazy/estargz-toc.js';
import { digestOf } from '../src/image/digest.js';
import { chunksFor, type LayerIndex } from '../src/image/lazy/layer-index.js';
import { fetchLayerToc, loadLayerIndex } from '../src/image/lazy/layer-toc-fetch.js';
import { PrivateContainerd } from './helpers/containerd.js';
import { layoutWithFiles, pushEstargz, seededBytes } from './helpers/estargz.js';
import { startFaultProxy, startRegistry, startTokenServer, type Registry } from './helpers/registry.js';
import { FIXTURE_ROOTFS } from './helpers/runbox.js';
import { cleanupList } from './helpers/teardown.js';
import { tarBytes } from './helpers/layers.js';
import { craftedLayer, craftImage, startTinyRegistry } from './helpers/tiny-registry.js';

const BIG = seededBytes(9 * 1024 * 1024 + 123, 7);
const SMALL = Buffer.from('hello from a lazy layer\n');
const setup = cleanupList();
let registry: Registry;


test.before(async () => {
  const containerd = await PrivateContainerd.start(setup);
  registry = await startRegistry(setup);
  const layout = layoutWithFiles(setup, { 'data/big': BIG, 'data/small.txt': SMALL });
  await pushEstargz(containerd, registry, layout, 'lazy/esgz:1');
});
test.after.always(() => setup.run());

interface Opened {
  store: ContentStore;
  client: RegistryClient;
  fetcher: BlobFetcher;
  layers: Descriptor[];
}

async function openImage(t: { teardown(f: () => void): void }, host: string, repository: string, tag: string, options: RegistryClientOptions = {}): Promise<Opened> {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-lazy-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const client = new RegistryClient({ retries: 1, backoffMs: 10, ...options });
  t.teardown(() => client.close());
  const endpoints = client.endpoints(host);
  const manifest = parseManifest((await fetchManifest(client, endpoints[0]!, repository, tag)).bytes);
  return { store: new ContentStore(dir), client, fetcher: new BlobFetcher(client, endpoints, repository), layers: manifest.layers };
}

/** The index of the image's last layer (the one with the test's files) and a fetcher of its chunks. */
async function lastLayer(opened: Opened, options: ConstructorParameters<typeof ChunkFetcher>[2] = {}): Promise<{ index: LayerIndex; chunks: ChunkFetcher }> {
  const layer = opened.layers.at(-1)!;
  const located = await fetchLayerToc(opened.fetcher, opened.store, layer);
  if (!located) throw new Error('not eStargz');
  return { index: loadLayerIndex(opened.store, located), chunks: new ChunkFetcher(opened.store, opened.fetcher, { retries: 2, ...options }) };
}

async function readFile(chunks: ChunkFetcher, index: LayerIndex, name: string, offset: number, length: number): Promise<Buffer> {
  const file = index.files.get(name)!;
  const parts = await Promise.all(chunksFor(file, offset, length).map((chunk) => {
    const from = Math.max(offset, chunk.fileOffset);
    const to = Math.min(offset + length, chunk.fileOffset + chunk.size);
    return chunks.read(chunk, from - chunk.fileOffset, to - from);
  }));
  return Buffer.concat(parts);
}

function blobRequests(proxy: Awaited<ReturnType<typeof startFaultProxy>>): { path: string; range?: string }[] {
  return proxy.requests.filter((r) => r.path.includes('/blobs/'));
}

test('the TOC of a ctr-remote eStargz layer comes from one tail Range request; files read back byte for byte', async (t) => {
  const proxy = await startFaultProxy(t, registry.host);
  const opened = await openImage(t, proxy.host, 'lazy/esgz', '1');
  const layer = opened.layers.at(-1)!;
  t.truthy(layer.annotations?.[TOC_DIGEST_ANNOTATION]);
  const { index, chunks } = await lastLayer(opened);
  const tocRequests = blobRequests(proxy);
  t.is(tocRequests.length, 1);
  t.is(tocRequests[0]!.range, `bytes=${layer.size - 64 * 1024}-${layer.size - 1}`);
  t.is(index.files.get('data/big')!.chunks.length, 3, '4 MiB chunks');

  t.deepEqual(await readFile(chunks, index, 'data/small.txt', 0, SMALL.length), SMALL);
  // Across the boundary of the first and second chunks, then the whole file.
  const across = 4 * 1024 * 1024 - 1000;
  t.deepEqual(await readFile(chunks, index, 'data/big', across, 5000), BIG.subarray(across, across + 5000));
  t.true((await readFile(chunks, index, 'data/big', 0, BIG.length)).equals(BIG), 'the whole file');
  const stats = chunks.layerStats(layer.digest);
  t.true(stats.fetched.demand < layer.size, 'only the chunks asked for');
  t.is(stats.refused, 0);

  // The base layer's busybox, compared with the fixture's.
  const base = await fetchLayerToc(opened.fetcher, opened.store, opened.layers[0]!);
  const baseIndex = loadLayerIndex(opened.store, base!);
  const busybox = readFileSync(join(FIXTURE_ROOTFS, 'bin', 'busybox'));
  t.true((await readFile(new ChunkFetcher(opened.store, opened.fetcher), baseIndex, 'bin/busybox', 0, busybox.length)).equals(busybox), 'busybox');
});

test('readers of one chunk, however many, cause one fetch of it', async (t) => {
  const proxy = await startFaultProxy(t, registry.host);
  const opened = await openImage(t, proxy.host, 'lazy/esgz', '1');
  const { index, chunks } = await lastLayer(opened);
  const before = blobRequests(proxy).length;
  const reads = await Promise.all(Array.from({ length: 12 }, (_, i) => readFile(chunks, index, 'data/big', 5 * 1024 * 1024 + i * 1000, 100)));
  reads.forEach((bytes, i) => t.deepEqual(bytes, BIG.subarray(5 * 1024 * 1024 + i * 1000, 5 * 1024 * 1024 + i * 1000 + 100)));
  t.is(blobRequests(proxy).length - before, 1);
  // Read again: from the content store, no request.
  await readFile(chunks, index, 'data/big', 5 * 1024 * 1024, 10);
  t.is(blobRequests(proxy).length - before, 1);
  t.true(opened.store.has(index.files.get('data/big')!.chunks[1]!.digest), 'the chunk is in the content store under its digest');
});

test('a corrupted chunk is refused and fetched again; one corrupted every time is EIO and never stored', async (t) => {
  const proxy = await startFaultProxy(t, registry.host);
  const opened = await openImage(t, proxy.host, 'lazy/esgz', '1');
  const { index, chunks } = await lastLayer(opened, { retries: 2 });
  const layer = opened.layers.at(-1)!;
  proxy.fault = { kind: 'corrupt', times: 1 };
  t.deepEqual(await readFile(chunks, index, 'data/big', 0, 4096), BIG.subarray(0, 4096));
  t.is(chunks.layerStats(layer.digest).refused, 1);

  proxy.fault = { kind: 'corrupt', times: 100 };
  const third = index.files.get('data/big')!.chunks[2]!;
  const error = await t.throwsAsync(readFile(chunks, index, 'data/big', third.fileOffset, 10), { instanceOf: LazyReadError });
  t.is((error as LazyReadError).errno, 'EIO');
  t.regex(error!.message, /hash to sha256:[0-9a-f]+, not sha256:|does not decompress/);
  t.regex(error!.message, /tried 3 times/);
  t.false(opened.store.has(third.digest));
});

test('registry gone after start: local chunks still read, a missing one is EIO after the retries', async (t) => {
  const own = await startRegistry(t, { storage: registry.storage });
  const opened = await openImage(t, own.host, 'lazy/esgz', '1');
  const { index, chunks } = await lastLayer(opened, { retries: 2, backoff: async () => {} });
  t.deepEqual(await readFile(chunks, index, 'data/small.txt', 0, SMALL.length), SMALL);
  await readFile(chunks, index, 'data/big', 0, 10);
  // Stop the registry: kill its process by the port it listens on.
  const { execFileSync } = await import('node:child_process');
  execFileSync('fuser', ['-k', '-KILL', `${own.host.split(':')[1]}/tcp`], { stdio: 'ignore' });
  t.deepEqual(await readFile(chunks, index, 'data/small.txt', 0, SMALL.length), SMALL);
  t.deepEqual(await readFile(chunks, index, 'data/big', 100, 10), BIG.subarray(100, 110));
  const error = await t.throwsAsync(readFile(chunks, index, 'data/big', 8 * 1024 * 1024, 10), { instanceOf: LazyReadError });
  t.regex(error!.message, /cannot reach/);
});

test('the legacy 47-byte footer is read; a TOC that does not match its annotation is refused; other layers are not lazy', async (t) => {
  const source = await openImage(t, registry.host, 'lazy/esgz', '1');
  const layer = source.layers.at(-1)!;
  const { body } = await source.fetcher.range(layer.digest, 0);
  const parts: Buffer[] = [];
  for await (const part of body as AsyncIterable<Buffer>) parts.push(part);
  const blob = Buffer.concat(parts);
  const tocOffset = Number.parseInt(blob.subarray(blob.length - 51 + 16, blob.length - 51 + 32).toString('latin1'), 16);
  const legacy = Buffer.concat([blob.subarray(0, blob.length - 51), makeFooter(tocOffset, true)]);

  const tiny = await startTinyRegistry(t);
  const stored = tiny.blob(legacy);
  const annotations = { ...layer.annotations };
  const legacyLayer = { bytes: legacy, digest: stored.digest, size: stored.size, mediaType: layer.mediaType, diffId: 'sha256:' + '0'.repeat(64) };
  craftImage(tiny, 'legacy', '1', [legacyLayer], { manifest: (m) => void (m.layers[0]!.annotations = annotations) });
  craftImage(tiny, 'badtoc', '1', [legacyLayer], { manifest: (m) => void (m.layers[0]!.annotations = { ...annotations, [TOC_DIGEST_ANNOTATION]: `sha256:${'1'.repeat(64)}` }) });
  const plain = await craftedLayer([{ header: { name: 'a.txt' }, content: 'plain' }]);
  craftImage(tiny, 'plain', '1', [plain]);
  tiny.blob(gzipSync(Buffer.alloc(0)));

  const opened = await openImage(t, tiny.host, 'legacy', '1');
  const { index, chunks } = await lastLayer(opened);
  t.is((await fetchLayerToc(opened.fetcher, opened.store, opened.layers[0]!))!.tocOffset, tocOffset);
  t.deepEqual(await readFile(chunks, index, 'data/small.txt', 0, SMALL.length), SMALL);

  const bad = await openImage(t, tiny.host, 'badtoc', '1');
  await t.throwsAsync(fetchLayerToc(bad.fetcher, bad.store, bad.layers[0]!), { message: /TOC digest mismatch: the layer's annotation says sha256:1111/ });

  const other = await openImage(t, tiny.host, 'plain', '1');
  t.is(await fetchLayerToc(other.fetcher, other.store, other.layers[0]!), undefined);
});

test('an expired token is refreshed between on-demand reads', async (t) => {
  const credentials = { username: 'lazy', password: 'pw' };
  const tokens = await startTokenServer(t, credentials);
  const secured = await startRegistry(t, { storage: registry.storage, auth: { token: tokens } });
  const proxy = await startFaultProxy(t, secured.host);
  const opened = await openImage(t, proxy.host, 'lazy/esgz', '1', { credentials: () => credentials });
  const { index, chunks } = await lastLayer(opened);
  await readFile(chunks, index, 'data/big', 0, 10);
  const issued = tokens.issued.length;
  // The registry no longer takes the token it issued, as when it has expired.
  proxy.fault = { kind: 'unauthorized', times: 1 };
  t.deepEqual(await readFile(chunks, index, 'data/big', 4 * 1024 * 1024, 10), BIG.subarray(4 * 1024 * 1024, 4 * 1024 * 1024 + 10));
  t.is(tokens.issued.length, issued + 1, 'a new token was asked for');
  t.true(proxy.requests.some((r) => r.status === 401));
});

test('the background fetch brings every chunk, and an on-demand read does not wait behind it', async (t) => {
  const proxy = await startFaultProxy(t, registry.host);
  const opened = await openImage(t, proxy.host, 'lazy/esgz', '1');
  const { index, chunks } = await lastLayer(opened, { maxSpan: 1024 * 1024 });
  const all = index.chunks;
  // Slow enough that the last chunk is still far off when it is read.
  const background = new BackgroundFetch(chunks, all, 2 * 1024 * 1024);
  const last = index.files.get('data/big')!.chunks.at(-1)!;
  t.deepEqual(await chunks.read(last, 0, 10), BIG.subarray(last.fileOffset, last.fileOffset + 10));
  t.is(chunks.layerStats(last.layer).fetched.demand > 0, true, 'fetched on demand, not by the background fetch');
  await background.finished;
  t.is(background.progress.failed, 0);
  t.true(all.every((chunk) => chunks.has(chunk)));
  t.true(chunks.layerStats(last.layer).fetched.background > 0);
});

/** The eStargz blob with its TOC rewritten by `edit` (the footer kept right), and the new TOC's digest. */
async function withToc(blob: Buffer, edit: (toc: { entries: Array<Record<string, unknown>> }) => void): Promise<{ blob: Buffer; tocDigest: string }> {
  const tocOffset = Number.parseInt(blob.subarray(blob.length - 51 + 16, blob.length - 51 + 32).toString('latin1'), 16);
  const { gunzipSync } = await import('node:zlib');
  const tar = gunzipSync(blob.subarray(tocOffset, blob.length - 51));
  const size = Number.parseInt(tar.toString('latin1', 124, 136).replace(/\0.*$/s, '').trim(), 8);
  const toc = JSON.parse(tar.subarray(512, 512 + size).toString()) as { entries: Array<Record<string, unknown>> };
  edit(toc);
  const json = Buffer.from(JSON.stringify(toc));
  const member = gzipSync(await tarBytes([{ header: { name: 'stargz.index.json', mode: 0o644 }, content: json }]));
  return { blob: Buffer.concat([blob.subarray(0, tocOffset), member, makeFooter(tocOffset)]), tocDigest: digestOf(json) };
}

async function wholeBlob(opened: Opened, digest: string): Promise<Buffer> {
  const { body } = await opened.fetcher.range(digest, 0);
  const parts: Buffer[] = [];
  for await (const part of body as AsyncIterable<Buffer>) parts.push(part);
  return Buffer.concat(parts);
}

test('a chunk whose bytes are not those of its chunkDigest is never served, whatever its gzip says', async (t) => {
  const source = await openImage(t, registry.host, 'lazy/esgz', '1');
  const layer = source.layers.at(-1)!;
  // The TOC (matching its annotation) says small.txt holds other bytes than its member does.
  const other = Buffer.from('not what the member holds\n');
  const tampered = await withToc(await wholeBlob(source, layer.digest), (toc) => {
    const entry = toc.entries.find((e) => e.name === 'data/small.txt')!;
    entry.chunkDigest = digestOf(other);
  });
  const tiny = await startTinyRegistry(t);
  const stored = tiny.blob(tampered.blob);
  craftImage(tiny, 'tampered', '1', [{ bytes: tampered.blob, ...stored, mediaType: layer.mediaType, diffId: `sha256:${'0'.repeat(64)}` }], {
    manifest: (m) => void (m.layers[0]!.annotations = { [TOC_DIGEST_ANNOTATION]: tampered.tocDigest }),
  });
  const opened = await openImage(t, tiny.host, 'tampered', '1');
  const { index, chunks } = await lastLayer(opened, { retries: 1, backoff: async () => {} });
  const error = await t.throwsAsync(readFile(chunks, index, 'data/small.txt', 0, 5), { instanceOf: LazyReadError });
  t.regex(error!.message, /its bytes hash to sha256:[0-9a-f]{64}, not sha256:/);
  t.false(opened.store.has(digestOf(other)));
  t.is(chunks.layerStats(opened.layers[0]!.digest).refused, 2, 'refused, fetched again, refused again');
  // The rest of the layer is unaffected.
  t.deepEqual(await readFile(chunks, index, 'data/big', 0, 10), BIG.subarray(0, 10));
});
