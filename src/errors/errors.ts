// Every error runbox throws, in the manner of undici's lib/core/errors.js: one base class, RunboxError, and a
// subclass per kind of failure with a stable `code` (RUNBOX_ERR_…) that callers switch on instead of reading the
// message. An error about one container carries its id as `containerId` and says so first in its message
// (`container ID: …`, runc's wording); `detail` is the rest, for whoever names the container again.
// This module is the lowest layer: it imports nothing of the project.

/** The stable codes, one per class below. (Each class names itself too: the bundles are minified.) */
export const ErrorCode = {
  BASE: 'RUNBOX_ERR',
  USAGE: 'RUNBOX_ERR_USAGE',
  SPEC: 'RUNBOX_ERR_SPEC',
  RUNTIME: 'RUNBOX_ERR_RUNTIME',
  CONTAINER_NOT_FOUND: 'RUNBOX_ERR_CONTAINER_NOT_FOUND',
  CONTAINER_EXISTS: 'RUNBOX_ERR_CONTAINER_EXISTS',
  STATE_DAMAGE: 'RUNBOX_ERR_STATE_DAMAGE',
  RUNTIME_CONFIG: 'RUNBOX_ERR_RUNTIME_CONFIG',
  SANDBOX: 'RUNBOX_ERR_SANDBOX',
  VM_START: 'RUNBOX_ERR_VM_START',
  VM_CLONE: 'RUNBOX_ERR_VM_CLONE',
  AGENT: 'RUNBOX_ERR_AGENT',
  AGENT_FRAME_TOO_LARGE: 'RUNBOX_ERR_AGENT_FRAME_TOO_LARGE',
  RPC: 'RUNBOX_ERR_RPC',
  TTRPC_FRAME_TOO_LARGE: 'RUNBOX_ERR_TTRPC_FRAME_TOO_LARGE',
  IMAGE: 'RUNBOX_ERR_IMAGE',
  IMAGE_REFERENCE: 'RUNBOX_ERR_IMAGE_REFERENCE',
  IMAGE_NOT_FOUND: 'RUNBOX_ERR_IMAGE_NOT_FOUND',
  IMAGE_CONFIG: 'RUNBOX_ERR_IMAGE_CONFIG',
  DIGEST_MISMATCH: 'RUNBOX_ERR_DIGEST_MISMATCH',
  REGISTRY: 'RUNBOX_ERR_REGISTRY',
  UNPACK: 'RUNBOX_ERR_UNPACK',
  UNPACK_ENTRY_REFUSED: 'RUNBOX_ERR_UNPACK_ENTRY_REFUSED',
  LAZY_TOC: 'RUNBOX_ERR_LAZY_TOC',
  LAZY_TREE: 'RUNBOX_ERR_LAZY_TREE',
  LAZY_READ: 'RUNBOX_ERR_LAZY_READ',
  LAZY_LOADER: 'RUNBOX_ERR_LAZY_LOADER',
  TPM: 'RUNBOX_ERR_TPM',
  ATTESTATION: 'RUNBOX_ERR_ATTESTATION',
  KBS: 'RUNBOX_ERR_KBS',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface RunboxErrorOptions {
  /** The container the error is about: the message then starts with `container ID: `. */
  containerId?: string;
  cause?: unknown;
}

export class RunboxError extends Error {
  readonly code: ErrorCode = ErrorCode.BASE;
  override name = 'RunboxError';
  readonly containerId: string | undefined;
  /** The message less the `container ID: ` that names containerId. */
  readonly detail: string;

  constructor(detail: string, options: RunboxErrorOptions = {}) {
    super(options.containerId === undefined ? detail : `container ${options.containerId}: ${detail}`,
      options.cause === undefined ? undefined : { cause: options.cause });
    this.containerId = options.containerId;
    this.detail = detail;
  }
}

/** Any thrown value's message. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** An error's message for one that names container `id` itself: less its own `container ID: `, if it has one. */
export function detailFor(error: unknown, id: string): string {
  return error instanceof RunboxError && error.containerId === id ? error.detail : describe(error);
}

// ---- the command lines -------------------------------------------------------------------------------------

/** A command line that cannot be parsed (runbox's global flags, the shim's flags). */
export class UsageError extends RunboxError {
  override readonly code = ErrorCode.USAGE;
  override name = 'UsageError';
}

// ---- oci ---------------------------------------------------------------------------------------------------

/** A config.json that runbox refuses before anything is created (runc's wording where it has one). */
export class SpecError extends RunboxError {
  override readonly code = ErrorCode.SPEC;
  override name = 'SpecError';
}

// ---- runtime (the CLI's lifecycle) -------------------------------------------------------------------------

/** An error the runtime reports to its caller as is: one line naming the container and what is wrong. */
export class RuntimeError extends RunboxError {
  override readonly code: ErrorCode = ErrorCode.RUNTIME;
  override name = 'RuntimeError';
}

/** No container of that id (runc's `container ID does not exist`). */
export class ContainerNotFoundError extends RuntimeError {
  override readonly code = ErrorCode.CONTAINER_NOT_FOUND;
  override name = 'ContainerNotFoundError';

  constructor(containerId: string) {
    super('does not exist', { containerId });
    this.message = `container ${containerId} does not exist`;
  }
}

/** An id already taken by a container (runc's `container with ID ID already exists`). */
export class ContainerExistsError extends RuntimeError {
  override readonly code = ErrorCode.CONTAINER_EXISTS;
  override name = 'ContainerExistsError';

  constructor(containerId: string) {
    super('already exists', { containerId });
    this.message = `container with ID ${containerId} already exists`;
  }
}

/** A state.json (or config.json) in a container's directory that cannot be used. */
export class StateDamageError extends RuntimeError {
  override readonly code = ErrorCode.STATE_DAMAGE;
  override name = 'StateDamageError';
  /** What is wrong, naming the file: `PATH is not valid JSON (…)`. */
  readonly damage: string;

  constructor(containerId: string, path: string, what: string) {
    super(`${path} ${what} (delete --force ${containerId} ends whatever is left of it)`, { containerId });
    this.damage = `${path} ${what}`;
  }
}

/** The shim's runtime configuration file (containerd's runtime options) is unreadable or wrong. */
export class RuntimeConfigError extends RunboxError {
  override readonly code = ErrorCode.RUNTIME_CONFIG;
  override name = 'RuntimeConfigError';
}

// ---- sandboxes and drivers ---------------------------------------------------------------------------------

export interface SandboxErrorOptions extends RunboxErrorOptions {
  /** The errno the agent gave (errno.ts names the ones worth acting on); 0 when none applies. */
  errno?: number;
}

/** A driver's or a sandbox's error, with the errno worth acting on when there is one (ESRCH, EOPNOTSUPP…). */
export class SandboxError extends RunboxError {
  override readonly code: ErrorCode = ErrorCode.SANDBOX;
  override name = 'SandboxError';
  readonly errno: number;

  constructor(detail: string, options: SandboxErrorOptions = {}) {
    super(detail, options);
    this.errno = options.errno ?? 0;
  }
}

/** How a microVM's start went wrong, for a caller that can try another way (TCG after KVM, a boot after a clone). */
export interface VmStartFailure {
  cause: unknown;
  timedOut: boolean;
  qemuEnded: boolean;
  qemuRan: boolean;
  greeted: boolean;
}

/** Why a microVM did not start, in words for the user, and what happened. */
export class VmStartError extends SandboxError {
  override readonly code = ErrorCode.VM_START;
  override name = 'VmStartError';

  constructor(message: string, readonly what: VmStartFailure) {
    super(message);
  }
}

/** A microVM clone that could not be restored from its template: the template is dropped and the VM booted. */
export class CloneFailureError extends SandboxError {
  override readonly code = ErrorCode.VM_CLONE;
  override name = 'CloneFailureError';
}

/**
 * The agent's error response (native/agent/PROTOCOL.md: `error=MESSAGE`, `errno=N`). Its messages name the container
 * they are about: when that is the container the request was for, the id becomes `containerId`.
 */
export class AgentError extends RunboxError {
  override readonly code = ErrorCode.AGENT;
  override name = 'AgentError';

  constructor(message: string, readonly errno: number, requestedId?: string) {
    const prefix = `container ${requestedId}: `;
    const named = requestedId !== undefined && message.startsWith(prefix);
    super(named ? message.slice(prefix.length) : message, named ? { containerId: requestedId } : {});
  }
}

/** A frame the agent would refuse: its payload is over the limit. */
export class AgentFrameTooLargeError extends RunboxError {
  override readonly code = ErrorCode.AGENT_FRAME_TOO_LARGE;
  override name = 'AgentFrameTooLargeError';

  constructor(readonly bytes: number, limit: number) {
    super(`agent frame of ${bytes} bytes exceeds ${limit}`);
  }
}

// ---- rpc ---------------------------------------------------------------------------------------------------

/**
 * An error with a gRPC status (rpc/status-code.ts's StatusCode): thrown by a method implementation to choose the
 * status of its reply, and thrown by the clients for a reply that carries one.
 */
export class RpcError extends RunboxError {
  override readonly code = ErrorCode.RPC;
  override name = 'RpcError';

  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** A ttrpc frame over the protocol's limit, which no peer would accept. */
export class TtrpcFrameTooLargeError extends RunboxError {
  override readonly code = ErrorCode.TTRPC_FRAME_TOO_LARGE;
  override name = 'TtrpcFrameTooLargeError';

  constructor(readonly length: number, readonly streamId: number, limit: number) {
    super(`ttrpc frame of ${length} bytes on stream ${streamId} exceeds the ${limit}-byte limit`);
  }
}

// ---- images ------------------------------------------------------------------------------------------------

/** A pull that failed, naming the image. */
export class ImageError extends RunboxError {
  override readonly code = ErrorCode.IMAGE;
  override name = 'ImageError';

  constructor(readonly image: string, override readonly cause: Error) {
    super(`image ${image}: ${cause.message}`, { cause });
  }
}

/** An image the store does not hold (`image rm`, `image stats` of a name never pulled). */
export class ImageNotFoundError extends RunboxError {
  override readonly code = ErrorCode.IMAGE_NOT_FOUND;
  override name = 'ImageNotFoundError';
}

/** An image config that cannot be read, or from which no config.json can be made (user, group, command). */
export class ImageConfigError extends RunboxError {
  override readonly code = ErrorCode.IMAGE_CONFIG;
  override name = 'ImageConfigError';
}

/** An eStargz layer's table of contents that cannot be used: unverifiable, malformed, or naming an unsafe entry. */
export class TocError extends RunboxError {
  override readonly code = ErrorCode.LAZY_TOC;
  override name = 'TocError';
}

/** An image's layers that do not make one tree (the lazy image's, built from their tables of contents). */
export class LazyTreeError extends RunboxError {
  override readonly code = ErrorCode.LAZY_TREE;
  override name = 'LazyTreeError';
}

/** Image data that could not be fetched, after the retries: a reader of the lazy image gets EIO. */
export class LazyReadError extends RunboxError {
  override readonly code = ErrorCode.LAZY_READ;
  override name = 'LazyReadError';
  readonly errno = 'EIO';
}

/** A store's lazy loader that did not start, refused a request (its words), or whose image could not be mounted. */
export class LazyLoaderError extends RunboxError {
  override readonly code = ErrorCode.LAZY_LOADER;
  override name = 'LazyLoaderError';
}

/** An image reference that docker and containerd would not read either. */
export class ImageReferenceError extends RunboxError {
  override readonly code = ErrorCode.IMAGE_REFERENCE;
  override name = 'ImageReferenceError';
}

export class DigestMismatchError extends RunboxError {
  override readonly code = ErrorCode.DIGEST_MISMATCH;
  override name = 'DigestMismatchError';

  constructor(readonly expected: string, readonly actual: string) {
    super(`digest mismatch: expected ${expected}, got ${actual}`);
  }
}

/** What can go wrong talking to a registry, as a user can act on it. */
export type RegistryErrorKind = 'not-found' | 'unauthorized' | 'unreachable' | 'protocol' | 'digest-mismatch' | 'no-platform' | 'insecure' | 'limit';

/** A registry's refusal or failure; messages never carry credentials. */
export class RegistryError extends RunboxError {
  override readonly code = ErrorCode.REGISTRY;
  override name = 'RegistryError';

  constructor(
    readonly kind: RegistryErrorKind,
    /** The message without the number of attempts. */
    readonly reason: string,
    readonly transient = false,
    /** How many times the request was made before this error was given up on. */
    readonly attempts = 1,
  ) {
    super(attempts > 1 ? `${reason} (tried ${attempts} times)` : reason);
  }

  /** The same error, after `attempts` attempts in all. */
  tried(attempts: number): RegistryError {
    return new RegistryError(this.kind, this.reason, this.transient, attempts);
  }
}

/** A layer that cannot be applied: which layer, which entry (as shown: long names shortened), why. */
export class UnpackError extends RunboxError {
  override readonly code = ErrorCode.UNPACK;
  override name = 'UnpackError';

  constructor(
    readonly layer: string,
    readonly entry: string | undefined,
    readonly reason: string,
    shownEntry: string | undefined = entry,
  ) {
    super(`layer ${layer}${shownEntry === undefined ? '' : `: entry ${JSON.stringify(shownEntry)}`}: ${reason}`);
  }
}

/** A refusal about one layer entry; the layer loop adds which layer and entry it was. */
export class EntryRefusedError extends RunboxError {
  override readonly code = ErrorCode.UNPACK_ENTRY_REFUSED;
  override name = 'EntryRefusedError';
}

// ---- attestation -------------------------------------------------------------------------------------------

/** A TPM 2.0 command that failed: `rc` is the TPM's response code (0 when the answer could not be read). */
export class TpmError extends RunboxError {
  override readonly code = ErrorCode.TPM;
  override name = 'TpmError';

  constructor(detail: string, readonly rc = 0, options: RunboxErrorOptions = {}) {
    super(detail, options);
  }
}

/** Evidence the verifier refuses: the message says which check failed (a PCR and what it measures, the nonce…). */
export class AttestationError extends RunboxError {
  override readonly code = ErrorCode.ATTESTATION;
  override name = 'AttestationError';
}

/** A request the key broker refuses (or cannot serve), with the HTTP status it answers. */
export class KbsError extends RunboxError {
  override readonly code = ErrorCode.KBS;
  override name = 'KbsError';

  constructor(detail: string, readonly status = 400, options: RunboxErrorOptions = {}) {
    super(detail, options);
  }
}
