// What an image may take, so that a hostile or broken one cannot fill a disk or run without end: the bytes of a
// layer and of the whole image (as the manifest declares its blobs, and as its tars unpack), the entries of a
// layer, the size of its config. The defaults are beyond what real images need; flags raise them.
import type { Descriptor } from './image-index.js';
import { RegistryError } from '../errors/errors.js';

export interface ImageLimits {
  /** Bytes of one layer: its blob, and its tar uncompressed. */
  layerBytes: number;
  /** Bytes of all the layers together: their blobs, and their tars uncompressed. */
  imageBytes: number;
  /** Entries (files, directories, links, whiteouts…) in one layer. */
  layerEntries: number;
}

const GiB = 1024 ** 3;

export const DEFAULT_IMAGE_LIMITS: ImageLimits = { layerBytes: 64 * GiB, imageBytes: 128 * GiB, layerEntries: 2_000_000 };

/** The flag that raises each limit, for messages. */
export const LIMIT_FLAGS: Record<keyof ImageLimits, string> = {
  layerBytes: '--max-layer-size',
  imageBytes: '--max-image-size',
  layerEntries: '--max-layer-entries',
};

/** An image config is read whole: a bigger one is refused. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export function limitText(limits: ImageLimits, which: keyof ImageLimits): string {
  return `the ${LIMIT_FLAGS[which]} limit (${limits[which]}${which === 'layerEntries' ? '' : ' bytes'})`;
}

function checkSize(descriptor: Descriptor, what: string, max: number, limit: string): void {
  const size = (descriptor as { size?: unknown }).size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new RegistryError('protocol', `${what} has no valid size in the manifest (${JSON.stringify(size) ?? 'none'})`);
  }
  if (size > max) throw new RegistryError('limit', `${what} is ${size} bytes, over ${limit}`);
}

/**
 * Refuses a manifest whose blobs have no size or sizes over the limits, before anything is downloaded: a download
 * stops at the size its descriptor gives.
 */
export function checkDescriptors(config: Descriptor, layers: Descriptor[], limits: ImageLimits): void {
  checkSize(config, `config ${config.digest}`, MAX_CONFIG_BYTES, `the limit for an image config (${MAX_CONFIG_BYTES} bytes)`);
  let total = 0;
  for (const layer of layers) {
    checkSize(layer, `layer ${layer.digest}`, limits.layerBytes, limitText(limits, 'layerBytes'));
    total += layer.size;
  }
  if (total > limits.imageBytes) throw new RegistryError('limit', `its layers are ${total} bytes, over ${limitText(limits, 'imageBytes')}`);
}
