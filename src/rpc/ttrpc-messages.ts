// ttrpc's own envelopes (github.com/containerd/ttrpc request.proto), as the connection code uses them.
import { decode, encode, messageType } from './protos.js';
import { StatusCode, statusCodeFromWire } from './status-code.js';
import { RpcError } from '../errors/errors.js';

export interface TtrpcRequest {
  service: string;
  method: string;
  payload: Buffer;
  timeoutNano: number;
  metadata: { key: string; value: string }[];
}

const requestType = () => messageType('ttrpc.Request');
const responseType = () => messageType('ttrpc.Response');

export function encodeRequest(request: TtrpcRequest): Buffer {
  return encode(requestType(), request);
}

export function decodeRequest(bytes: Uint8Array): TtrpcRequest {
  return decode(requestType(), bytes);
}

/** A Response frame's data: the payload, or the status of a failed call. */
export function encodeResponse(outcome: Buffer | RpcError): Buffer {
  if (outcome instanceof RpcError) return encode(responseType(), { status: { code: outcome.status, message: outcome.message } });
  return encode(responseType(), { status: { code: StatusCode.OK }, payload: outcome });
}

/** The payload of a Response frame's data; throws the RpcError it carries. */
export function decodeResponse(bytes: Uint8Array): Buffer {
  const response = decode(responseType(), bytes);
  const code = response.status ? statusCodeFromWire(response.status.code) : StatusCode.OK;
  if (code !== StatusCode.OK) throw new RpcError(code, response.status.message);
  return response.payload;
}

export function metadataPairs(metadata: Record<string, string[]> | undefined): { key: string; value: string }[] {
  return Object.entries(metadata ?? {}).flatMap(([key, values]) => values.map((value) => ({ key, value })));
}
