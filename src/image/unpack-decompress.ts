// A layer blob as a plain tar stream. The media type says how it is compressed; the first bytes are checked too,
// and win when they clearly say gzip or zstd (registries and tools do mislabel layers). zstd goes through Debian's
// `zstd` binary: measured on a 120 MB layer it decompresses in 0.4 s against 0.9 s for the best pure-JS decoder
// (fzstd), and it runs beside Node on another core.
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { layerCompression, type LayerCompression } from './media-types.js';

export interface TarStream {
  tar: Readable;
  /** Settles when decompression has finished (or failed: a corrupt stream, `zstd` exiting non-zero). */
  finished: Promise<void>;
  /** Stops reading and decompressing after a failure elsewhere. */
  abort(): void;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

function startsWith(head: Buffer, magic: number[]): boolean {
  return head.length >= magic.length && magic.every((byte, i) => head[i] === byte);
}

export function sniffCompression(head: Buffer, declared: LayerCompression): LayerCompression {
  if (startsWith(head, GZIP_MAGIC)) return 'gzip';
  if (startsWith(head, ZSTD_MAGIC)) return 'zstd';
  // A tar stream starts with a file name; a declared compression whose magic is absent is a mislabelled plain tar
  // only when the ustar magic says so, otherwise the decompressor reports the corruption.
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'none';
  return declared;
}

/** Reads until at least `size` bytes (or the end) and returns them with a stream that replays them first. */
async function peek(source: NodeJS.ReadableStream, size: number): Promise<{ head: Buffer; stream: Readable }> {
  const iterator = (source as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let length = 0;
  let done = false;
  while (length < size) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    chunks.push(chunk);
    length += chunk.length;
  }
  const head = Buffer.concat(chunks);
  async function* replay(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    if (done) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    }
  }
  const stream = Readable.from(replay(), { objectMode: false });
  stream.once('close', () => void iterator.return?.());
  return { head, stream };
}

function zstdDecompress(compressed: Readable): TarStream {
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot run zstd: ${e.message}`)));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`zstd: ${stderr.trim().split('\n').pop() || `exited with ${code ?? signal}`}`));
    });
  });
  const feeding = pipeline(compressed, child.stdin).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error; // zstd stopped reading: its exit status says why
  });
  return {
    tar: child.stdout,
    finished: Promise.all([feeding, exited]).then(() => {}),
    abort: () => {
      compressed.destroy();
      child.kill('SIGKILL');
    },
  };
}

/** Opens a layer blob and returns its uncompressed tar stream. */
export async function openTarStream(source: NodeJS.ReadableStream, mediaType: string): Promise<TarStream> {
  const declared = layerCompression(mediaType);
  if (declared === undefined) throw new Error(`unsupported layer media type ${mediaType}`);
  const { head, stream } = await peek(source, 262);
  switch (sniffCompression(head, declared)) {
    case 'none':
      return { tar: stream, finished: finished(stream), abort: () => stream.destroy() };
    case 'gzip': {
      const gunzip = createGunzip({ chunkSize: 256 * 1024 });
      return { tar: gunzip, finished: pipeline(stream, gunzip), abort: () => stream.destroy() };
    }
    case 'zstd':
      return zstdDecompress(stream);
  }
}
