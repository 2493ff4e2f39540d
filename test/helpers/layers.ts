// Crafting image layers in tests (tar-stream's pack, then gzip or zstd) and reading layers from an OCI layout.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { ExecutionContext } from 'ava';
import { pack, type Header } from 'tar-stream';
import type { ImageConfig } from '../../src/image/image-config.js';
import { MediaType } from '../../src/image/media-types.js';
import type { LayerSource } from '../../src/image/unpack.js';

export interface LayerEntry {
  header: Partial<Header> & { name: string; pax?: Record<string, string> };
  content?: string | Buffer;
}

export type Compression = 'none' | 'gzip' | 'zstd';

const LAYER_TYPE: Record<Compression, string> = {
  none: MediaType.ociLayerTar,
  gzip: MediaType.ociLayerGzip,
  zstd: MediaType.ociLayerZstd,
};

export async function tarBytes(entries: LayerEntry[]): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of archive as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
  })();
  for (const { header, content } of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (error?: Error | null) => (error ? reject(error) : resolve());
      if (content === undefined) archive.entry({ mtime: new Date(1_600_000_000_000), ...header }, done);
      else archive.entry({ mtime: new Date(1_600_000_000_000), ...header }, content, done);
    });
  }
  archive.finalize();
  await collected;
  return Buffer.concat(chunks);
}

export function compress(tar: Buffer, compression: Compression): Buffer {
  if (compression === 'gzip') return gzipSync(tar);
  if (compression === 'zstd') {
    const result = spawnSync('zstd', ['-q', '-c'], { input: tar, maxBuffer: 1 << 30 });
    if (result.status !== 0) throw new Error(`zstd: ${result.stderr.toString()}`);
    return result.stdout;
  }
  return tar;
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function bufferLayer(blob: Buffer, mediaType: string): LayerSource {
  return { digest: sha256(blob), mediaType, open: async () => Readable.from([blob]) };
}

/** A layer made of `entries`, compressed as asked and labelled with the matching OCI media type. */
export async function craftLayer(entries: LayerEntry[], compression: Compression = 'gzip'): Promise<LayerSource> {
  return bufferLayer(compress(await tarBytes(entries), compression), LAYER_TYPE[compression]);
}

export interface LayoutImage {
  config: ImageConfig;
  layers: LayerSource[];
}

/** The image a tag names in an OCI image layout (one manifest, no index nesting), its layers read from blobs/. */
export function readOciLayout(layout: string, tag = 'latest'): LayoutImage {
  const blob = (digest: string) => join(layout, 'blobs', ...digest.split(':'));
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`${layout} has no tag ${tag}`);
  const manifest = JSON.parse(readFileSync(blob(entry.digest), 'utf8')) as {
    config: { digest: string };
    layers: Array<{ digest: string; mediaType: string }>;
  };
  return {
    config: JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as ImageConfig,
    layers: manifest.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, open: async () => createReadStream(blob(l.digest)) })),
  };
}

export interface UnpackSandbox {
  dir: string;
  rootfs: string;
  /** A directory beside the rootfs holding `secret`: no layer may change anything in it. */
  canary: string;
  /** Every path under the canary (and the sandbox dir's own listing) with type, mode, size, mtime and content hash. */
  outside(): string[];
}

function listing(dir: string, under = ''): string[] {
  const lines: string[] = [];
  for (const name of readdirSync(join(dir, under)).sort()) {
    const rel = join(under, name);
    const stat = lstatSync(join(dir, rel));
    const hash = stat.isFile() ? createHash('sha256').update(readFileSync(join(dir, rel))).digest('hex') : '';
    lines.push(`${rel} ${stat.mode.toString(8)} ${stat.size} ${stat.mtimeMs} ${stat.nlink} ${hash}`);
    if (stat.isDirectory()) lines.push(...listing(dir, rel));
  }
  return lines;
}

/** A temp dir with a canary directory and the path of a rootfs to unpack into; removed when the test ends. */
export function unpackSandbox(t: ExecutionContext): UnpackSandbox {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-unpack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const canary = join(dir, 'canary');
  mkdirSync(canary);
  writeFileSync(join(canary, 'secret'), 'do not touch\n');
  return { dir, rootfs: join(dir, 'rootfs'), canary, outside: () => listing(dir).filter((l) => !l.startsWith('rootfs')) };
}
