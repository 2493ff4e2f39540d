// Applying image layers, in order, onto an empty rootfs. This is a security boundary: see unpack-paths.ts for how
// entry names stay inside the rootfs, unpack-entries.ts for how each node is written, image-limits.ts for what a
// layer may take.
import { EntryRefusedError, UnpackError } from '../errors/errors.js';
import { futimesSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { digestHasher, parseDigest } from './digest.js';
import { noRoom } from './free-space.js';
import { DEFAULT_IMAGE_LIMITS, limitText, type ImageLimits } from './image-limits.js';
import { openTarStream } from './unpack-decompress.js';
import { applyEntry, withPaxOverrides, type LayerProgress } from './unpack-entries.js';
import { RootfsResolver, shortName } from './unpack-paths.js';
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
  /** Bytes and entries the layers may unpack to (DEFAULT_IMAGE_LIMITS by default). */
  limits?: ImageLimits;
}

/** The UnpackError for a layer, naming its entry (shortened) when the failure is about one. */
export function unpackError(layer: string, entry: string | undefined, reason: string): UnpackError {
  return new UnpackError(layer, entry, reason, entry === undefined ? undefined : shortName(entry));
}

/** What a failed filesystem call says, without the /proc/self/fd path it was given. */
function reasonOf(error: unknown): string {
  if (error instanceof EntryRefusedError) return error.message;
  const { code, syscall, message } = error as NodeJS.ErrnoException;
  if (code && syscall) return `${syscall}: ${message.split(', ')[0]}`;
  return (error as Error).message;
}

/** Bytes of uncompressed tar the image has unpacked so far, against its limit. */
interface ImageBudget {
  used: number;
}

async function applyLayer(layer: LayerSource, resolver: RootfsResolver, budget: ImageBudget, limits: ImageLimits, warn: (message: string) => void): Promise<void> {
  let current: string | undefined;
  const progress: LayerProgress = {
    written: new Set(),
    ancestorsOfWritten: new Set(),
    directoryTimes: [],
    warn: (message) => warn(`layer ${layer.digest}: entry ${JSON.stringify(shortName(current ?? ''))}: ${message}`),
  };
  let stream;
  try {
    if (layer.diffId !== undefined) parseDigest(layer.diffId);
    stream = await openTarStream(await layer.open(), layer.mediaType);
  } catch (error) {
    throw unpackError(layer.digest, undefined, (error as Error).message);
  }
  const uncompressed = layer.diffId !== undefined ? digestHasher(layer.diffId) : undefined;
  const entries = extract();
  const failed = (error: Error) => entries.destroy(error);
  let bytes = 0;
  stream.tar.on('data', (chunk: Buffer) => {
    uncompressed?.update(chunk);
    bytes += chunk.length;
    budget.used += chunk.length;
    if (bytes > limits.layerBytes) failed(unpackError(layer.digest, undefined, `its uncompressed tar is over ${limitText(limits, 'layerBytes')}`));
    else if (budget.used > limits.imageBytes) failed(unpackError(layer.digest, undefined, `the image's uncompressed layers are over ${limitText(limits, 'imageBytes')}`));
  });
  stream.finished.catch(failed);
  stream.tar.once('error', failed);
  stream.tar.pipe(entries as unknown as NodeJS.WritableStream);
  let count = 0;
  try {
    for await (const entry of entries) {
      current = entry.header.name;
      resolver.settle();
      if (++count > limits.layerEntries) throw unpackError(layer.digest, undefined, `it has more entries than ${limitText(limits, 'layerEntries')}`);
      if (isWhiteout(current)) {
        applyWhiteout(resolver, current, progress);
      } else {
        const full = noRoom(resolver.rootfs, entry.header.type === 'file' || entry.header.type === 'contiguous-file' ? entry.header.size ?? 0 : 0, 1);
        if (full) throw new EntryRefusedError(full);
        await applyEntry(resolver, withPaxOverrides(entry.header), entry as AsyncIterable<Buffer>, progress);
      }
      entry.resume();
    }
    await stream.finished;
    current = undefined;
    if (uncompressed) {
      await finished(stream.tar);
      const diffId = `${parseDigest(layer.diffId!).algorithm}:${uncompressed.digest('hex')}`;
      if (diffId !== layer.diffId) throw unpackError(layer.digest, undefined, `its uncompressed content is ${diffId}, not the image config's diff_id ${layer.diffId}`);
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
    throw unpackError(layer.digest, current, reasonOf(error));
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
  const limits = options.limits ?? DEFAULT_IMAGE_LIMITS;
  const budget: ImageBudget = { used: 0 };
  let resolver: RootfsResolver | undefined;
  try {
    resolver = new RootfsResolver(rootfs);
    for (const layer of layers) await applyLayer(layer, resolver, budget, limits, warn);
  } catch (error) {
    resolver?.close();
    resolver = undefined;
    await rm(rootfs, { recursive: true, force: true });
    throw error;
  } finally {
    resolver?.close();
  }
}
