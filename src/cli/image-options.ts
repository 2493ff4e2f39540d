// Flags shared by the commands that use the image store (image, bundle, run --image) and what they build.
import * as Flags from '@oclif/core/flags';
import { join, resolve } from 'node:path';
import { DEFAULT_IMAGE_LIMITS, type ImageLimits } from '../image/image-limits.js';
import { DEFAULT_STORE, ImageStore } from '../image/image-store.js';
import { parsePlatform, type Platform } from '../image/platform.js';
import { ImageError, UsageError } from '../errors/errors.js';
import type { RegistrySettings } from '../lazy-loader/loader-protocol.js';
import { context } from './context.js';
import { parseSize } from './parse-size.js';

/** The store's directory under an explicit --root: container ids start with a letter or digit. */
const ROOT_STORE = '.images';

export const storeFlags = {
  store: Flags.string({ description: `image store directory (default $RUNBOX_STORE, else ROOT/${ROOT_STORE} with --root, else ${DEFAULT_STORE})` }),
  'insecure-registry': Flags.string({ description: 'registry (host:port) that may be reached over plain HTTP', multiple: true, multipleNonGreedy: true }),
  'registry-mirror': Flags.string({ description: 'REGISTRY=URL: try this mirror before the registry', multiple: true, multipleNonGreedy: true }),
  quota: Flags.string({ description: 'size the store may hold (e.g. 10G); least recently used images are evicted' }),
  'registry-timeout': Flags.integer({ description: 'seconds to wait for a registry\'s answer or its next bytes before retrying', min: 1, default: 30 }),
};

export const pullFlags = {
  platform: Flags.string({ description: 'os/architecture[/variant] to pull from a multi-platform image (default: this host)' }),
  quiet: Flags.boolean({ char: 'q', description: 'no progress output' }),
  'max-layer-size': Flags.string({ description: 'largest layer, as downloaded and as unpacked (default 64G)' }),
  'max-image-size': Flags.string({ description: 'largest image, all its layers as downloaded and as unpacked (default 128G)' }),
  'max-layer-entries': Flags.integer({ description: `most entries (files, directories, links…) in one layer (default ${DEFAULT_IMAGE_LIMITS.layerEntries})`, min: 1 }),
};

export const lazyFlags = {
  lazy: Flags.boolean({ description: 'lazy loading: eStargz layers are fetched on demand and in the background, the rest whole (docs/lazy-loading.md)' }),
  'lazy-background-rate': Flags.string({ description: 'with --lazy: bytes per second the background fetch may take (default 8M; 0: none, every chunk on demand)' }),
};

/** The registry settings a lazy loader fetches with: those of the command (credentials it reads itself). */
export function registrySettings(flags: StoreFlagValues): RegistrySettings {
  return {
    insecureRegistries: flags['insecure-registry'] ?? [],
    mirrors: mirrors(flags['registry-mirror'] ?? []),
    ...(flags['registry-timeout'] ? { timeoutMs: flags['registry-timeout'] * 1000 } : {}),
  };
}

interface StoreFlagValues {
  store?: string | undefined;
  'insecure-registry'?: string[] | undefined;
  'registry-mirror'?: string[] | undefined;
  quota?: string | undefined;
  'registry-timeout'?: number | undefined;
  'max-layer-size'?: string | undefined;
  'max-image-size'?: string | undefined;
  'max-layer-entries'?: number | undefined;
}

function mirrors(values: string[]): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new UsageError(`invalid --registry-mirror "${value}": want REGISTRY=URL`);
    (result[value.slice(0, eq)] ??= []).push(value.slice(eq + 1));
  }
  return result;
}

/**
 * The store's directory: --store, $RUNBOX_STORE, under an explicit --root (a name no container id can take, so
 * that `list` never mistakes it for one), else the default. The default --root (/run/runbox) is a tmpfs: images
 * there would be held in memory and lost at reboot.
 */
function storeDirectory(flags: StoreFlagValues): string {
  const root = context().options.root;
  return flags.store ?? process.env.RUNBOX_STORE ?? (root ? join(resolve(root), ROOT_STORE) : DEFAULT_STORE);
}

function limits(flags: StoreFlagValues): ImageLimits {
  return {
    layerBytes: flags['max-layer-size'] ? parseSize(flags['max-layer-size']) : DEFAULT_IMAGE_LIMITS.layerBytes,
    imageBytes: flags['max-image-size'] ? parseSize(flags['max-image-size']) : DEFAULT_IMAGE_LIMITS.imageBytes,
    layerEntries: flags['max-layer-entries'] ?? DEFAULT_IMAGE_LIMITS.layerEntries,
  };
}

export function openStore(flags: StoreFlagValues): ImageStore {
  return new ImageStore(storeDirectory(flags), {
    limits: limits(flags),
    insecureRegistries: flags['insecure-registry'] ?? [],
    mirrors: mirrors(flags['registry-mirror'] ?? []),
    ...(flags['registry-timeout'] ? { timeoutMs: flags['registry-timeout'] * 1000 } : {}),
    ...(flags.quota ? { quota: parseSize(flags.quota) } : {}),
  });
}

export function platformFlag(value: string | undefined): Platform | undefined {
  return value ? parsePlatform(value) : undefined;
}

/** An error about `reference`, named once: pull errors already name the image. */
export function imageError(reference: string, error: Error): Error {
  return error instanceof ImageError ? error : new ImageError(reference, error);
}
