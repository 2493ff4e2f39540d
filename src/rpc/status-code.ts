/** The gRPC status codes (google.rpc.Code), which ttrpc and gRPC both carry in their error replies. */
export enum StatusCode {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/**
 * An error with a status: thrown by a method implementation to choose the status of its reply, and thrown by the
 * clients for a reply that carries one. containerd turns NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT,
 * FAILED_PRECONDITION, UNAVAILABLE and UNIMPLEMENTED into its own error kinds and everything else into "unknown".
 */
export class RpcError extends Error {
  constructor(
    readonly code: StatusCode,
    message: string,
  ) {
    super(message);
    this.name = 'RpcError';
  }

  /** The status a reply carries for any thrown value: an RpcError keeps its own, anything else is UNKNOWN. */
  static from(error: unknown): RpcError {
    if (error instanceof RpcError) return error;
    return new RpcError(StatusCode.UNKNOWN, error instanceof Error ? error.message : String(error));
  }
}

/** A code received from a peer, as one of ours: codes this side does not know become UNKNOWN. */
export function statusCodeFromWire(code: number): StatusCode {
  return Number.isInteger(code) && code >= StatusCode.OK && code <= StatusCode.UNAUTHENTICATED ? code : StatusCode.UNKNOWN;
}
