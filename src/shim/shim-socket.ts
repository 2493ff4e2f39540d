// Where a shim listens: /run/containerd/s/<sha256(containerd address/namespace/id)>, where the id is the pod's
// (group's) id when the container belongs to one, so that every container of a pod reaches the same shim.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENV_SHIM_PROTOCOL, GROUP_ANNOTATIONS, SHIM_SOCKET_DIRECTORY, SHIM_STATE_DIR_NAME_LENGTH, SHIM_STATE_ROOT } from '../generated/facts.js';
import { UsageError } from '../errors/errors.js';

/** The group a bundle's container belongs to, from its config.json annotations; its own id otherwise. */
export function groupId(bundle: string, id: string): string {
  let annotations: Record<string, unknown> = {};
  try {
    annotations = (JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { annotations?: Record<string, unknown> }).annotations ?? {};
  } catch {
    // A missing or unreadable config.json fails Create, with a clear error; here the container is its own group.
  }
  for (const name of GROUP_ANNOTATIONS) {
    const value = annotations[name];
    if (typeof value === 'string' && value !== '') return value;
  }
  return id;
}

export function shimSocketPath(containerdAddress: string, namespace: string, group: string): string {
  const digest = createHash('sha256').update(`${containerdAddress}/${namespace}/${group}`).digest('hex');
  return join(SHIM_SOCKET_DIRECTORY, digest);
}

/**
 * The shim's own private directory (mode 0700): its pid, and the sandbox's sockets and files. Short, for the
 * sandbox's socket paths, and named after the shim's socket so that `start` and `delete` find it.
 */
export function shimStateDir(socketPath: string): string {
  return join(SHIM_STATE_ROOT, socketPath.slice(-SHIM_STATE_DIR_NAME_LENGTH));
}

/** Where a shim's sandbox lives, under its private state directory. */
export function sandboxDir(stateDir: string): string {
  return join(stateDir, 'sandbox');
}

/** The bootstrap line containerd reads from `start`: a plain address (ttrpc, all versions) or JSON for gRPC (2.x). */
export function bootstrapLine(socketPath: string, protocol: ShimProtocol): string {
  const address = `unix://${socketPath}`;
  return protocol === 'grpc' ? JSON.stringify({ version: 3, address, protocol: 'grpc' }) : address;
}

export type ShimProtocol = 'ttrpc' | 'grpc';

/** The protocol the shim serves: ttrpc unless RUNBOX_SHIM_PROTOCOL=grpc (containerd 2.x's task.v3 over gRPC). */
export function shimProtocol(env: NodeJS.ProcessEnv = process.env): ShimProtocol {
  const wanted = env[ENV_SHIM_PROTOCOL] ?? 'ttrpc';
  if (wanted !== 'ttrpc' && wanted !== 'grpc') throw new UsageError(`${ENV_SHIM_PROTOCOL} must be ttrpc or grpc, not "${wanted}"`);
  return wanted;
}
