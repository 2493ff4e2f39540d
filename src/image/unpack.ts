// Applying image layers, in order, onto an empty rootfs. This is a security boundary: see unpack-paths.ts for how
// entry names stay inside the rootfs, unpack-entries.ts for how each node is written.
import { createHash } from 'node:crypto';
import { futimesSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { openTarStream } from './unpack-decompress.js';
import { applyEntry, withPaxOverrides, type LayerProgress } from './unpack-entries.js';
import { EntryRefused, RootfsResolver, shortName } from './unpack-paths.js';
import { applyWhiteout, isWhiteout } from './unpack-whiteouts.js';

export interface LayerSource {
  digest: string;
  mediaType: string;
  open(): Promise<NodeJS.ReadableStream>;
  /** The image config's diff_id for this layer: the digest its uncompressed tar must have. */
  diffId?: string;
}

export interface UnpackOptions {
  /** Where non-fatal notes go (an xattr that could not be kept); stderr by default. */
  warn?: (message: string) => void;
}

export class UnpackError extends Error {
  constructor(
    readonly layer: string,
    readonly entry: string | undefined,
    readonly reason: string,
  ) {
    super(`layer ${layer}${entry === undefined ? '' : `: entry ${JSON.stringify(shortName(entry))}`}: ${reason}`);
    this.name = 'UnpackError';
  }
}

/** What a failed filesystem call says, without the /proc/self/fd path it was given. */
function reasonOf(error: unknown): string {
  if (error instanceof EntryRefused) return error.message;
  const { code, syscall, message } = error as NodeJS.ErrnoException;
  if (code && syscall) return `${syscall}: ${message.split(', ')[0]}`;
  return (error as Error).message;
}

async function applyLayer(layer: LayerSource, resolver: RootfsResolver, warn: (message: string) => void): Promise<void> {
  let current: string | undefined;
  const progress: LayerProgress = {
    written: new Set(),
    ancestorsOfWritten: new Set(),
    directoryTimes: [],
    warn: (message) => warn(`layer ${layer.digest}: entry ${JSON.stringify(shortName(current ?? ''))}: ${message}`),
  };
  let stream;
  try {
    stream = await openTarStream(await layer.open(), layer.mediaType);
  } catch (error) {
    throw new UnpackError(layer.digest, undefined, (error as Error).message);
  }
  const uncompressed = layer.diffId ? createHash('sha256') : undefined;
  if (uncompressed) stream.tar.on('data', (chunk: Buffer) => uncompressed.update(chunk));
  const entries = extract();
  const failed = (error: Error) => entries.destroy(error);
  stream.finished.catch(failed);
  stream.tar.once('error', failed);
  stream.tar.pipe(entries as unknown as NodeJS.WritableStream);
  try {
    for await (const entry of entries) {
      current = entry.header.name;
      resolver.settle();
      if (isWhiteout(current)) applyWhiteout(resolver, current, progress);
      else await applyEntry(resolver, withPaxOverrides(entry.header), entry as AsyncIterable<Buffer>, progress);
      entry.resume();
    }
    await stream.finished;
    current = undefined;
    if (uncompressed) {
      await finished(stream.tar);
      const diffId = `sha256:${uncompressed.digest('hex')}`;
      if (diffId !== layer.diffId) throw new UnpackError(layer.digest, undefined, `its uncompressed content is ${diffId}, not the image config's diff_id ${layer.diffId}`);
    }
    for (const [real, mtime] of progress.directoryTimes) {
      resolver.settle();
      const dir = resolver.realDirectory(real);
      if (dir) futimesSync(dir.fd, mtime, mtime);
    }
  } catch (error) {
    stream.abort();
    entries.destroy();
    if (error instanceof UnpackError) throw error;
    throw new UnpackError(layer.digest, current, reasonOf(error));
  }
}

async function ensureEmpty(rootfs: string): Promise<void> {
  await mkdir(rootfs, { recursive: true });
  if ((await readdir(rootfs)).length > 0) throw new Error(`rootfs ${rootfs} is not empty`);
}

/**
 * Applies the layers in order onto an EMPTY rootfs dir (made if missing); on any error removes the rootfs and
 * throws an UnpackError naming the layer digest and the entry. The rootfs should be where no other user can
 * reach it until this is done (a bundle is made in a 0700 directory): nobody else must be able to add to it or
 * use what it holds (setuid files, devices) while it is written.
 */
export async function unpackLayers(layers: LayerSource[], target: string, options: UnpackOptions = {}): Promise<void> {
  const rootfs = resolve(target);
  await ensureEmpty(rootfs);
  const warn = options.warn ?? ((message: string) => process.stderr.write(`runbox: ${message}\n`));
  let resolver: RootfsResolver | undefined;
  try {
    resolver = new RootfsResolver(rootfs);
    for (const layer of layers) await applyLayer(layer, resolver, warn);
  } catch (error) {
    resolver?.close();
    resolver = undefined;
    await rm(rootfs, { recursive: true, force: true });
    throw error;
  } finally {
    resolver?.close();
  }
}
