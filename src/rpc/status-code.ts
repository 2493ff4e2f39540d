import { describe, RpcError } from '../errors/errors.js';

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

/** The status a reply carries for any thrown value: an RpcError (errors.ts) keeps its own, anything else is UNKNOWN. */
export function rpcErrorFrom(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  return new RpcError(StatusCode.UNKNOWN, describe(error));
}

/** A code received from a peer, as one of ours: codes this side does not know become UNKNOWN. */
export function statusCodeFromWire(code: number): StatusCode {
  return Number.isInteger(code) && code >= StatusCode.OK && code <= StatusCode.UNAUTHENTICATED ? code : StatusCode.UNKNOWN;
}
