// Unpack throughput: the same ~200 MB (uncompressed) three-layer image, built from this machine's /usr, unpacked by
// runbox (gzip and zstd layers), by umoci (Go, the same applier family as containerd's) and by GNU tar, the floor.
// Prints a markdown table: median of BENCH_UNPACK_ROUNDS rounds.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MediaType } from '../src/image/media-types.js';
import { unpackLayers } from '../src/image/unpack.js';
import { readOciLayout } from '../test/helpers/layers.js';
import { median } from './stats.js';

const ROUNDS = Number(process.env.BENCH_UNPACK_ROUNDS ?? 3);
const SOURCES = ['usr/lib/python3.11', 'usr/share/perl', 'usr/include'];

type Compression = 'gzip' | 'zstd';
const COMPRESSORS: Record<Compression, { command: string[]; mediaType: string }> = {
  gzip: { command: ['gzip', '-6', '-c'], mediaType: MediaType.ociLayerGzip },
  zstd: { command: ['zstd', '-3', '-q', '-c'], mediaType: MediaType.ociLayerZstd },
};

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function writeBlob(layout: string, bytes: Buffer): { digest: string; size: number } {
  const digest = sha256(bytes);
  writeFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

interface BuiltImage {
  layout: string;
  uncompressed: number;
  compressed: Record<Compression, number>;
  files: number;
}

export function buildLayout(work: string): BuiltImage {
  const layout = join(work, 'layout');
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const tars = SOURCES.map((dir) => execFileSync('tar', ['-C', '/', '--sort=name', '-cf', '-', dir], { maxBuffer: 1 << 30 }));
  const files = Number(execFileSync('sh', ['-c', `find ${SOURCES.map((d) => `/${d}`).join(' ')} | wc -l`]).toString());
  const compressed = { gzip: 0, zstd: 0 };
  const manifests = (Object.keys(COMPRESSORS) as Compression[]).map((compression) => {
    const { command, mediaType } = COMPRESSORS[compression];
    const layers = tars.map((tar) => {
      const blob = writeBlob(layout, execFileSync(command[0]!, command.slice(1), { input: tar, maxBuffer: 1 << 30 }));
      compressed[compression] += blob.size;
      return { mediaType, ...blob };
    });
    const config = writeBlob(
      layout,
      Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: tars.map(sha256) } })),
    );
    const manifest = writeBlob(layout, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, ...config }, layers })));
    return { mediaType: MediaType.ociManifest, ...manifest, annotations: { 'org.opencontainers.image.ref.name': compression } };
  });
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  return { layout, uncompressed: tars.reduce((sum, tar) => sum + tar.length, 0), compressed, files };
}


interface Sample {
  wallMs: number;
  cpuMs: number;
}

const seconds = (text: string) => {
  const [, m, s] = /(\d+)m([\d.]+)s/.exec(text) ?? [];
  return (Number(m) * 60 + Number(s)) * 1000;
};

/**
 * Runs `script` in bash into an empty `target`: wall time, and CPU time (user + system of everything it ran, from
 * bash's `times`), which moves far less than wall time when the machine is shared.
 */
function timed(target: string, script: string): Sample {
  const samples: Sample[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    rmSync(target, { recursive: true, force: true });
    execFileSync('sync');
    const started = process.hrtime.bigint();
    const out = execFileSync('bash', ['-c', `set -e; ${script} >/dev/null; times`], { env: { ...process.env, TARGET: target } }).toString();
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    const [user = '', system = ''] = out.trim().split('\n').pop()!.split(/\s+/);
    samples.push({ wallMs, cpuMs: seconds(user) + seconds(system) });
  }
  rmSync(target, { recursive: true, force: true });
  return { wallMs: median(samples.map((s) => s.wallMs)), cpuMs: median(samples.map((s) => s.cpuMs)) };
}

function layerBlobs(layout: string, tag: string): string[] {
  return readOciLayout(layout, tag).layers.map((l) => join(layout, 'blobs', 'sha256', l.digest.slice(7)));
}

export async function unpackBench(): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'runbox-bench-unpack-'));
  try {
    const image = buildLayout(work);
    const target = join(work, 'target');
    const rows: Array<[string, Sample]> = [];
    const self = fileURLToPath(import.meta.url);
    for (const compression of ['gzip', 'zstd'] as Compression[]) {
      rows.push([`runbox, ${compression} layers`, timed(target, `node ${self} ${image.layout} ${compression} "$TARGET"`)]);
      const flag = compression === 'gzip' ? '-z' : '--zstd';
      const extract = layerBlobs(image.layout, compression).map((blob) => `tar -C "$TARGET" ${flag} --same-owner -xpf ${blob}`);
      rows.push([`GNU tar ${flag}, ${compression} layers`, timed(target, `mkdir "$TARGET"; ${extract.join('; ')}`)]);
    }
    rows.push(['umoci unpack, gzip layers', timed(target, `umoci unpack --image ${image.layout}:gzip "$TARGET"`)]);
    const mb = image.uncompressed / 1e6;
    const lines = [
      `unpack of one ${image.files}-file image (${SOURCES.map((s) => `/${s}`).join(', ')}): ${mb.toFixed(0)} MB of tar in ${SOURCES.length} layers, ` +
        `${(image.compressed.gzip / 1e6).toFixed(0)} MB gzip, ${(image.compressed.zstd / 1e6).toFixed(0)} MB zstd; median of ${ROUNDS}; runbox's times include starting node`,
      '',
      '| unpacker | wall ms | CPU ms (user+sys) | MB/s (uncompressed, wall) |',
      '| --- | ---: | ---: | ---: |',
      ...rows.map(([name, { wallMs, cpuMs }]) => `| ${name} | ${wallMs.toFixed(0)} | ${cpuMs.toFixed(0)} | ${(mb / (wallMs / 1000)).toFixed(0)} |`),
    ];
    return `${lines.join('\n')}\n`;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// `node unpack.js` prints the table; `node unpack.js LAYOUT TAG TARGET` unpacks one image (what the table times).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [layout, tag, target] = process.argv.slice(2);
  if (layout && tag && target) await unpackLayers(readOciLayout(layout, tag).layers, target);
  else process.stdout.write(await unpackBench());
}
