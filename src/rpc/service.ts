import { StatusCode, rpcErrorFrom } from './status-code.js';
import { RpcError } from '../errors/errors.js';

/** What a method implementation learns about its call besides the request. */
export interface CallContext {
  /** Request metadata; a key sent several times has several values. */
  metadata: Record<string, string[]>;
  /** Aborts when the call's deadline passes, the peer goes away or the server closes; the reason is an RpcError. */
  signal: AbortSignal;
  deadline?: Date;
}

/** Takes a decoded request (plain object, see protos.ts) and resolves to the response as a plain object. */
export type MethodImplementation = (request: any, context: CallContext) => Promise<object>;

/** Method name as written in the .proto (e.g. 'Create') → its implementation. */
export type ServiceImplementation = Record<string, MethodImplementation>;

/** Metadata in the shape a CallContext gives, from a list of key/value pairs where keys may repeat. */
export function groupMetadata(pairs: Iterable<{ key: string; value: string }>): Record<string, string[]> {
  const metadata: Record<string, string[]> = Object.create(null);
  for (const { key, value } of pairs) (metadata[key] ??= []).push(value);
  return metadata;
}

/**
 * Runs one call of an implementation with the abort plumbing both transports share: resolves to the response, or
 * rejects with the RpcError its reply must carry. A call whose signal aborted rejects with the abort reason even if
 * the implementation goes on to resolve: the caller has stopped waiting for it.
 */
export async function invoke(implementation: MethodImplementation, request: object, context: CallContext): Promise<object> {
  const { signal } = context;
  if (signal.aborted) throw rpcErrorFrom(signal.reason);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(rpcErrorFrom(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([Promise.resolve().then(() => implementation(request, context)), aborted]);
  } catch (error) {
    throw rpcErrorFrom(error);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

export const deadlineExceeded = (): RpcError => new RpcError(StatusCode.DEADLINE_EXCEEDED, 'deadline exceeded');
