// The one place where the errors of the layers below the shim become the gRPC statuses containerd acts on (as
// Kata's shim errors.go): by their code, and a sandbox's by its errno. containerd turns NOT_FOUND, ALREADY_EXISTS,
// INVALID_ARGUMENT, FAILED_PRECONDITION, UNAVAILABLE and UNIMPLEMENTED into its own error kinds.
import { Errno } from '../errors/errno.js';
import { describe, ErrorCode, RpcError, RunboxError, SandboxError } from '../errors/errors.js';
import { StatusCode } from '../rpc/status-code.js';

const STATUS_BY_CODE: Partial<Record<ErrorCode, StatusCode>> = {
  [ErrorCode.SPEC]: StatusCode.INVALID_ARGUMENT,
  [ErrorCode.RUNTIME_CONFIG]: StatusCode.INVALID_ARGUMENT,
};

const STATUS_BY_ERRNO: Partial<Record<number, StatusCode>> = {
  [Errno.ENOENT]: StatusCode.NOT_FOUND,
  [Errno.ESRCH]: StatusCode.NOT_FOUND,
  [Errno.EEXIST]: StatusCode.ALREADY_EXISTS,
  [Errno.EOPNOTSUPP]: StatusCode.FAILED_PRECONDITION,
};

/** The RpcError a Task method's reply carries for `error`: an RpcError keeps its status, anything unknown is UNKNOWN. */
export function rpcErrorOf(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  if (error instanceof SandboxError) {
    const status = STATUS_BY_ERRNO[error.errno];
    if (status !== undefined) {
      // The words of a Kill of a task already stopped: the process was gone when the agent came to it.
      return new RpcError(status, error.errno === Errno.ESRCH ? `${error.message}: process already finished` : error.message);
    }
  }
  const status = error instanceof RunboxError ? STATUS_BY_CODE[error.code] : undefined;
  return new RpcError(status ?? StatusCode.UNKNOWN, describe(error));
}
