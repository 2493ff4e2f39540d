import { parseDigest } from './digest.js';
import { ImageConfigError } from '../errors/errors.js';

/** The OCI image configuration (image-spec config.md); Docker's config JSON is the same shape. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  config?: ImageExecutionConfig;
  rootfs: { type: 'layers' | string; diff_ids: string[] };
  history?: ImageHistoryEntry[];
}

export interface ImageExecutionConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  ArgsEscaped?: boolean;
}

export interface ImageHistoryEntry {
  created?: string;
  author?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

/**
 * Parses an image config blob, refusing anything that is not an object with os, architecture and rootfs.diff_ids
 * (each a digest: every layer is checked against its own).
 */
export function parseImageConfig(json: string | Buffer, what = 'image config'): ImageConfig {
  let value: unknown;
  try {
    value = JSON.parse(json.toString());
  } catch (e) {
    throw new ImageConfigError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ImageConfigError(`${what} is not a JSON object`);
  const config = value as Partial<ImageConfig>;
  if (typeof config.os !== 'string') throw new ImageConfigError(`${what} has no "os"`);
  if (typeof config.architecture !== 'string') throw new ImageConfigError(`${what} has no "architecture"`);
  if (!config.rootfs || !Array.isArray(config.rootfs.diff_ids)) throw new ImageConfigError(`${what} has no "rootfs.diff_ids"`);
  config.rootfs.diff_ids.forEach((diffId: unknown, i) => {
    try {
      if (typeof diffId !== 'string') throw new Error('not a string');
      parseDigest(diffId);
    } catch {
      throw new ImageConfigError(`${what} has an invalid diff_id at index ${i}: ${JSON.stringify(diffId)}`);
    }
  });
  return config as ImageConfig;
}
