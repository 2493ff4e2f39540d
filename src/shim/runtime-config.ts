// The runtime options containerd passes with CreateTaskRequest: for a non-runc shim, runtimeoptions.v1.Options,
// whose config_path names runbox's own configuration file (CRI: the runtime's `options.ConfigPath`; ctr:
// `--runtime-config-path`). The file is JSON: {"driver": "emulated"|"qemu"|"auto", "annotations": {NAME: VALUE},
// "pool": {"size": N, "idleSeconds": N, "vms": N}}, where annotations are defaults for every container's config.json
// (a container's own annotations win) and pool sizes the warm pool of shims and of shims holding a pod's microVM
// (docs/warm-pool.md; the shim's C `start` reads it, and Create refuses a file where it is wrong).
import { readFileSync } from 'node:fs';
import { RuntimeConfigError } from '../errors/errors.js';
import { DRIVER_NAMES } from '../drivers/drivers.js';
import { anyTypeName, decodeAny } from '../rpc/protos.js';
import { validIdleSeconds, validPoolSize, type PoolSettings } from '../host/warm-pool.js';
import { POOL_MAX_IDLE_SECONDS, POOL_MAX_SIZE } from '../generated/facts.js';

export interface RuntimeConfig {
  driver?: string;
  annotations: Record<string, string>;
  pool?: Partial<PoolSettings> & { vms?: number };
}

const OPTIONS_TYPE = 'runtimeoptions.v1.Options';
const KEYS = new Set(['driver', 'annotations', 'pool']);

/** The configuration the options point at; empty without options. Other option types are not runbox's: ignored. */
export function runtimeConfig(options: { typeUrl: string; value: Uint8Array } | null | undefined): RuntimeConfig {
  if (!options?.typeUrl || anyTypeName(options) !== OPTIONS_TYPE) return { annotations: {} };
  const { configPath } = decodeAny(options) as { configPath: string };
  return configPath ? readRuntimeConfig(configPath) : { annotations: {} };
}

export function readRuntimeConfig(path: string): RuntimeConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new RuntimeConfigError(`runtime config ${path}: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new RuntimeConfigError(`runtime config ${path}: not a JSON object`);
  const fields = parsed as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!KEYS.has(key)) throw new RuntimeConfigError(`runtime config ${path}: unknown setting "${key}" (expected ${[...KEYS].join(', ')})`);
  }
  const { driver, annotations = {}, pool } = fields;
  if (driver !== undefined && !(DRIVER_NAMES as readonly unknown[]).includes(driver)) {
    throw new RuntimeConfigError(`runtime config ${path}: driver must be one of ${DRIVER_NAMES.join(', ')}, not ${JSON.stringify(driver)}`);
  }
  if (typeof annotations !== 'object' || annotations === null || Array.isArray(annotations) ||
      Object.values(annotations).some((value) => typeof value !== 'string')) {
    throw new RuntimeConfigError(`runtime config ${path}: annotations must be an object of strings`);
  }
  return {
    ...(driver ? { driver: driver as string } : {}),
    annotations: annotations as Record<string, string>,
    ...(pool !== undefined ? { pool: poolSettings(path, pool) } : {}),
  };
}

function poolSettings(path: string, pool: unknown): Partial<PoolSettings> & { vms?: number } {
  if (typeof pool !== 'object' || pool === null || Array.isArray(pool)) throw new RuntimeConfigError(`runtime config ${path}: pool must be an object`);
  const { size, idleSeconds, vms, ...others } = pool as Record<string, unknown>;
  const unknown = Object.keys(others)[0];
  if (unknown !== undefined) throw new RuntimeConfigError(`runtime config ${path}: unknown pool setting "${unknown}" (expected size, idleSeconds, vms)`);
  if (size !== undefined && !validPoolSize(size)) {
    throw new RuntimeConfigError(`runtime config ${path}: pool.size must be an integer from 0 to ${POOL_MAX_SIZE}, not ${JSON.stringify(size)}`);
  }
  if (idleSeconds !== undefined && !validIdleSeconds(idleSeconds)) {
    throw new RuntimeConfigError(`runtime config ${path}: pool.idleSeconds must be an integer from 1 to ${POOL_MAX_IDLE_SECONDS}, not ${JSON.stringify(idleSeconds)}`);
  }
  if (vms !== undefined && !validPoolSize(vms)) {
    throw new RuntimeConfigError(`runtime config ${path}: pool.vms must be an integer from 0 to ${POOL_MAX_SIZE}, not ${JSON.stringify(vms)}`);
  }
  return { ...(size !== undefined ? { size } : {}), ...(idleSeconds !== undefined ? { idleSeconds } : {}), ...(vms !== undefined ? { vms } : {}) };
}
