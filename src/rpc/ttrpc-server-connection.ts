import type { Socket } from 'node:net';
import { decode, encode, type MethodTypes } from './protos.js';
import { deadlineExceeded, groupMetadata, invoke, type MethodImplementation } from './service.js';
import { StatusCode } from './status-code.js';
import { RpcError, TtrpcFrameTooLargeError } from '../errors/errors.js';
import { decodeRequest, encodeResponse, type TtrpcRequest } from './ttrpc-messages.js';
import { encodeFrame, Flags, FrameDecoder, type Frame, MAX_DATA_LENGTH, MessageType } from './ttrpc-frame.js';

export interface RegisteredMethod {
  types: MethodTypes;
  implementation: MethodImplementation;
}

/** Finds a method to call, or says with which status the call fails. */
export type MethodResolver = (service: string, method: string) => RegisteredMethod | RpcError;

/** setTimeout's longest delay; a later deadline is as good as none for a call. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long an ending connection may take to flush its last replies to a peer that does not read them. */
const END_GRACE_MS = 1000;

/**
 * One client connection of a TtrpcServer: runs every unary call it receives concurrently and answers each on its
 * stream. Nothing a peer sends makes it throw: a bad frame or request gets an error reply, an oversized frame gets
 * RESOURCE_EXHAUSTED and ends the connection, and a peer that goes away aborts the signals of its calls.
 */
export class TtrpcServerConnection {
  private readonly calls = new Map<number, AbortController>();
  private readonly decoder = new FrameDecoder(
    (frame) => this.onFrame(frame),
    (error) => this.onOversized(error),
  );
  private lastStreamId = 0;
  private ended = false;
  readonly closed: Promise<void>;

  constructor(
    private readonly socket: Socket,
    private readonly resolve: MethodResolver,
  ) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk);
      } catch (error) {
        // Only a bug of ours gets here; one connection pays for it, not the whole server.
        this.end(new RpcError(StatusCode.INTERNAL, `ttrpc server connection failed: ${(error as Error).message}`));
      }
    });
    socket.on('error', () => {
      // 'close' follows; the calls are aborted there.
    });
    socket.once('close', () => {
      this.ended = true;
      this.abortCalls(new RpcError(StatusCode.CANCELLED, 'the ttrpc client closed the connection'));
    });
  }

  /**
   * Aborts the calls in flight with reason, answers them with it, and closes the connection once that is sent.
   * Frames that arrive meanwhile are ignored.
   */
  end(reason: RpcError): void {
    this.abortCalls(reason);
    if (this.ended) return;
    this.ended = true;
    // The aborted calls reply from promise callbacks, which all run before this.
    setImmediate(() => {
      this.socket.end(() => this.socket.destroy());
      setTimeout(() => this.socket.destroy(), END_GRACE_MS).unref();
    });
  }

  private abortCalls(reason: RpcError): void {
    for (const controller of this.calls.values()) controller.abort(reason);
  }

  private onFrame(frame: Frame): void {
    if (this.ended) return;
    if (frame.type === MessageType.REQUEST) this.onRequest(frame);
    else if (frame.type === MessageType.DATA && !this.calls.has(frame.streamId)) {
      this.reply(frame.streamId, new RpcError(StatusCode.INVALID_ARGUMENT, `ttrpc stream ${frame.streamId} is not active`));
    }
    // Data for a call in flight (unary here, so it has none to read) and frame types of later protocol versions are
    // ignored, as containerd/ttrpc does.
  }

  private onOversized(error: TtrpcFrameTooLargeError): void {
    this.reply(error.streamId, new RpcError(StatusCode.RESOURCE_EXHAUSTED, error.message));
    this.end(new RpcError(StatusCode.CANCELLED, `ttrpc connection closed: ${error.message}`));
  }

  private onRequest(frame: Frame): void {
    const id = frame.streamId;
    const refused = this.checkStream(id, frame.flags);
    if (refused) return this.reply(id, refused);
    this.lastStreamId = id;
    let request: TtrpcRequest;
    try {
      request = decodeRequest(frame.data);
    } catch (error) {
      return this.reply(id, new RpcError(StatusCode.INVALID_ARGUMENT, `malformed ttrpc request: ${(error as Error).message}`));
    }
    const method = this.resolve(request.service, request.method);
    if (method instanceof RpcError) return this.reply(id, method);
    let input: object;
    try {
      input = decode(method.types.requestType, request.payload);
    } catch (error) {
      const name = method.types.requestType.fullName.slice(1);
      return this.reply(id, new RpcError(StatusCode.INVALID_ARGUMENT, `malformed ${name}: ${(error as Error).message}`));
    }
    this.run(id, method, input, request);
  }

  private checkStream(id: number, flags: number): RpcError | undefined {
    if (id % 2 !== 1) return new RpcError(StatusCode.INVALID_ARGUMENT, `ttrpc stream id ${id} is not odd, as client streams must be`);
    if (id <= this.lastStreamId) return new RpcError(StatusCode.INVALID_ARGUMENT, `ttrpc stream id ${id} reused: ids must increase`);
    if (flags & Flags.REMOTE_OPEN) return new RpcError(StatusCode.UNIMPLEMENTED, 'ttrpc streaming requests are not supported');
    return undefined;
  }

  private run(id: number, method: RegisteredMethod, input: object, request: TtrpcRequest): void {
    const controller = new AbortController();
    this.calls.set(id, controller);
    let timer: NodeJS.Timeout | undefined;
    let deadline: Date | undefined;
    if (request.timeoutNano !== 0) {
      const ms = request.timeoutNano / 1e6;
      deadline = new Date(Date.now() + ms);
      if (ms <= 0) controller.abort(deadlineExceeded());
      else if (ms <= MAX_TIMER_MS) timer = setTimeout(() => controller.abort(deadlineExceeded()), ms);
    }
    const context = { metadata: groupMetadata(request.metadata), signal: controller.signal, ...(deadline && { deadline }) };
    invoke(method.implementation, input, context)
      .then(
        (response) => this.reply(id, this.encodeOutput(method, response)),
        (error: RpcError) => this.reply(id, error),
      )
      .finally(() => {
        clearTimeout(timer);
        this.calls.delete(id);
      });
  }

  private encodeOutput(method: RegisteredMethod, response: object): Buffer | RpcError {
    try {
      const payload = encode(method.types.responseType, response);
      // The Response envelope around it needs a few bytes more; leave room for them.
      if (payload.length > MAX_DATA_LENGTH - 64) return new RpcError(StatusCode.RESOURCE_EXHAUSTED, `response of ${payload.length} bytes exceeds the ttrpc limit`);
      return payload;
    } catch (error) {
      return new RpcError(StatusCode.INTERNAL, `cannot encode ${method.types.responseType.fullName.slice(1)}: ${(error as Error).message}`);
    }
  }

  private reply(streamId: number, outcome: Buffer | RpcError): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(encodeFrame(streamId, MessageType.RESPONSE, 0, encodeResponse(outcome)));
  }
}
