// What the CLI and the lazy loader say to each other over the loader's socket: one JSON object per line each way.
import type { LayerStats } from '../image/lazy/chunk-fetcher.js';
import type { BackgroundProgress } from '../image/lazy/background-fetch.js';

/** Registry settings the loader fetches with (credentials it reads itself, from the Docker config). */
export interface RegistrySettings {
  insecureRegistries?: string[];
  mirrors?: Record<string, string[]>;
  timeoutMs?: number;
}

export type LoaderRequest =
  | { op: 'open'; image: string; registry: RegistrySettings; backgroundRate?: number; record?: boolean; quota?: number }
  | { op: 'accesses'; image: string }
  | { op: 'stats' }
  | { op: 'ping' };

export interface ImageStats {
  name: string;
  manifest: string;
  /** Compressed size of each layer, and what was fetched of it. */
  layers: Array<{ digest: string; size: number; lazy: boolean; stats: LayerStats }>;
  prefetch: { chunks: number; bytes: number };
  background?: BackgroundProgress;
  updated: string;
}

export type LoaderReply =
  | { ok: true; path: string; size: number; prefetched: number }
  | { ok: true; stats: ImageStats[] }
  | { ok: true; accesses: Array<{ path: string; size: number; ranges: Array<[number, number]> }> }
  | { ok: true }
  | { ok: false; error: string };
