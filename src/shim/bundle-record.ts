// What the `delete` subcommand needs to clean up after a shim that died (SIGKILL): the sandbox the container
// ran in and its init pid, in BUNDLE/runbox-shim.json, written atomically by the shim at Create and removed at
// Delete. The bundle also holds `address` and `shim.pid`, as containerd's own shims write them. None of these
// outlives a reboot (containerd keeps bundles under /run, the shims' directories are under /run too, and every
// shim and container ends with the host), so they are written atomically without a disk flush, as runc's shim
// writes its own.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxHandle } from '../sandbox/driver.js';
import { writeFileAtomic } from '../host/atomic-file.js';
import { BUNDLE_ADDRESS_FILE, BUNDLE_RECORD_FILE, SHIM_PID_FILE } from '../generated/facts.js';

export interface BundleRecord {
  sandbox: SandboxHandle;
  /** The shim's private directory (sandbox files included), removed when the sandbox is gone. */
  stateDir: string;
  pid: number;
  pidStartTime?: string;
}

export function writeBundleRecord(bundle: string, record: BundleRecord): void {
  writeFileAtomic(join(bundle, BUNDLE_RECORD_FILE), JSON.stringify(record), 0o600, false);
}

export function readBundleRecord(bundle: string): BundleRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(bundle, BUNDLE_RECORD_FILE), 'utf8')) as BundleRecord;
  } catch {
    return undefined;
  }
}

export function removeBundleRecord(bundle: string): void {
  rmSync(join(bundle, BUNDLE_RECORD_FILE), { force: true });
}

export function writeShimFiles(bundle: string, address: string, pid: number | undefined): void {
  writeFileAtomic(join(bundle, BUNDLE_ADDRESS_FILE), address, 0o644, false);
  if (pid) writeFileAtomic(join(bundle, SHIM_PID_FILE), String(pid), 0o644, false);
}

/**
 * Records the pid of the shim that owns a state directory (see shimStateDir), creating the directory (mode 0700).
 * `start` writes it as soon as it has started the shim, so that the next container of the group finds it even
 * before that shim runs; the shim writes it again itself.
 */
export function writeServingShimPid(stateDir: string, pid: number): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileAtomic(join(stateDir, SHIM_PID_FILE), String(pid), 0o600, false);
}

/** The pid of the shim that owns a state directory (see shimStateDir), if it wrote one. */
export function readShimPid(stateDir: string): number | undefined {
  try {
    return Number(readFileSync(join(stateDir, SHIM_PID_FILE), 'utf8')) || undefined;
  } catch {
    return undefined;
  }
}

export function readShimAddress(bundle: string): string | undefined {
  try {
    return readFileSync(join(bundle, BUNDLE_ADDRESS_FILE), 'utf8').trim();
  } catch {
    return undefined;
  }
}
