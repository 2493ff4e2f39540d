import { connect, type Socket } from 'node:net';
import { decode, encode, serviceMethods } from './protos.js';
import { deadlineExceeded } from './service.js';
import { StatusCode } from './status-code.js';
import { RpcError, TtrpcFrameTooLargeError } from '../errors/errors.js';
import { decodeResponse, encodeRequest, metadataPairs } from './ttrpc-messages.js';
import { encodeFrame, type Frame, FrameDecoder, MessageType } from './ttrpc-frame.js';

export interface CallOptions {
  /** Sent as the request's timeout_nano; the call also fails locally with DEADLINE_EXCEEDED when it passes. */
  timeoutMs?: number;
  metadata?: Record<string, string[]>;
}

interface PendingCall {
  resolve: (payload: Buffer) => void;
  reject: (error: RpcError) => void;
  timer: NodeJS.Timeout | undefined;
}

const LAST_STREAM_ID = 0xffffffff;

/** A ttrpc client on one unix socket connection; calls run concurrently, each on its own odd stream id. */
export class TtrpcClient {
  private readonly pending = new Map<number, PendingCall>();
  private readonly decoder = new FrameDecoder(
    (frame) => this.onFrame(frame),
    (error) => this.fail(new RpcError(StatusCode.RESOURCE_EXHAUSTED, error.message)),
  );
  private nextStreamId = 1;
  private failure: RpcError | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('error', (error) => this.fail(new RpcError(StatusCode.UNAVAILABLE, `ttrpc connection failed: ${error.message}`)));
    socket.on('close', () => this.fail(new RpcError(StatusCode.UNAVAILABLE, 'ttrpc connection closed')));
  }

  /** Connects to a unix socket path, given plain or as a `unix://` address (containerd writes both). */
  static connect(address: string): Promise<TtrpcClient> {
    const path = address.startsWith('unix://') ? address.slice('unix://'.length) : address;
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('error', (error) => reject(new RpcError(StatusCode.UNAVAILABLE, `cannot connect to ttrpc socket ${path}: ${error.message}`)));
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(new TtrpcClient(socket));
      });
    });
  }

  /** Calls a method of a proto/ service with a plain-object request; resolves to the plain-object response. */
  async call(service: string, method: string, request: object, options: CallOptions = {}): Promise<any> {
    const types = serviceMethods(service).get(method);
    if (!types) throw new Error(`${service} has no method ${method}`);
    const payload = await this.invoke(service, method, encode(types.requestType, request), options);
    try {
      return decode(types.responseType, payload);
    } catch (error) {
      throw new RpcError(StatusCode.INTERNAL, `malformed ${types.responseType.fullName.slice(1)} in reply: ${(error as Error).message}`);
    }
  }

  /** Sends an already encoded request payload to any service and method; resolves to the reply's payload bytes. */
  invoke(service: string, method: string, payload: Uint8Array, options: CallOptions = {}): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.nextStreamId > LAST_STREAM_ID) return Promise.reject(new RpcError(StatusCode.RESOURCE_EXHAUSTED, 'ttrpc stream ids exhausted on this connection'));
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;
    const { timeoutMs } = options;
    const request = encodeRequest({
      service,
      method,
      payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
      timeoutNano: timeoutMs === undefined ? 0 : Math.max(1, Math.round(timeoutMs * 1e6)),
      metadata: metadataPairs(options.metadata),
    });
    let frame: Buffer;
    try {
      frame = encodeFrame(streamId, MessageType.REQUEST, 0, request);
    } catch (error) {
      return Promise.reject(error instanceof TtrpcFrameTooLargeError ? new RpcError(StatusCode.RESOURCE_EXHAUSTED, error.message) : error);
    }
    return new Promise((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => this.settle(streamId)?.reject(deadlineExceeded()), timeoutMs);
      this.pending.set(streamId, { resolve, reject, timer });
      this.socket.write(frame);
    });
  }

  /** Closes the connection; calls still waiting fail with CANCELLED. */
  close(): void {
    this.fail(new RpcError(StatusCode.CANCELLED, 'ttrpc client closed'));
  }

  private onFrame(frame: Frame): void {
    if (frame.type !== MessageType.RESPONSE) return;
    const call = this.settle(frame.streamId);
    if (!call) return; // a call that timed out here already
    try {
      call.resolve(decodeResponse(frame.data));
    } catch (error) {
      call.reject(error instanceof RpcError ? error : new RpcError(StatusCode.INTERNAL, `malformed ttrpc response: ${(error as Error).message}`));
    }
  }

  private settle(streamId: number): PendingCall | undefined {
    const call = this.pending.get(streamId);
    if (!call) return undefined;
    this.pending.delete(streamId);
    clearTimeout(call.timer);
    return call;
  }

  private fail(reason: RpcError): void {
    this.failure ??= reason;
    this.socket.destroy();
    for (const streamId of [...this.pending.keys()]) this.settle(streamId)!.reject(this.failure);
  }
}
