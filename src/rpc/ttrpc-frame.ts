// ttrpc framing (containerd/ttrpc PROTOCOL.md): a 10-byte header — data length u32 BE, stream id u32 BE, message
// type u8, flags u8 — then the data, at most 4 MiB.
import { TtrpcFrameTooLargeError } from '../errors/errors.js';

export const HEADER_LENGTH = 10;
export const MAX_DATA_LENGTH = 4 << 20;

export enum MessageType {
  REQUEST = 1,
  RESPONSE = 2,
  DATA = 3,
}

export const Flags = {
  /** Request/data: the sender sends no more data on this stream. */
  REMOTE_CLOSED: 0x1,
  /** Request: a streaming request whose sender still sends data. */
  REMOTE_OPEN: 0x2,
  /** Data: the frame carries no data. */
  NO_DATA: 0x4,
} as const;

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  data: Buffer;
}

/** The frame's bytes; throws for data over the 4 MiB limit, which no peer would accept. */
export function encodeFrame(streamId: number, type: MessageType, flags: number, data: Uint8Array): Buffer {
  if (data.length > MAX_DATA_LENGTH) throw new TtrpcFrameTooLargeError(data.length, streamId, MAX_DATA_LENGTH);
  const frame = Buffer.allocUnsafe(HEADER_LENGTH + data.length);
  frame.writeUInt32BE(data.length, 0);
  frame.writeUInt32BE(streamId, 4);
  frame.writeUInt8(type, 8);
  frame.writeUInt8(flags, 9);
  frame.set(data, HEADER_LENGTH);
  return frame;
}

/**
 * Cuts a byte stream into frames, whatever the chunk boundaries. Holds at most one header and one frame's data
 * (≤ 4 MiB), and reads a frame's data straight out of the chunk that holds all of it. A header announcing more
 * than the limit is an error: the decoder reports it once and takes no more input, since the bytes after it cannot
 * be trusted to start a frame.
 */
export class FrameDecoder {
  private state: 'header' | 'data' | 'failed' = 'header';
  private readonly header = Buffer.alloc(HEADER_LENGTH);
  private headerFilled = 0;
  private streamId = 0;
  private type = 0;
  private flags = 0;
  private dataLength = 0;
  /** Allocated only for data that spans chunks; data within one chunk is a view of that chunk. */
  private data: Buffer | undefined;
  private dataFilled = 0;

  constructor(
    private readonly onFrame: (frame: Frame) => void,
    private readonly onError: (error: TtrpcFrameTooLargeError) => void,
  ) {}

  /** Bytes of a frame begun but not finished: non-zero at end of input means the peer cut a frame short. */
  get buffered(): number {
    if (this.state === 'header') return this.headerFilled;
    return this.state === 'data' ? HEADER_LENGTH + this.dataFilled : 0;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && this.state !== 'failed') {
      const available = chunk.length - offset;
      if (this.state === 'header') {
        if (this.headerFilled === 0 && available >= HEADER_LENGTH) {
          this.readHeader(chunk, offset);
          offset += HEADER_LENGTH;
        } else {
          const taken = Math.min(HEADER_LENGTH - this.headerFilled, available);
          chunk.copy(this.header, this.headerFilled, offset, offset + taken);
          this.headerFilled += taken;
          offset += taken;
          if (this.headerFilled === HEADER_LENGTH) {
            this.headerFilled = 0;
            this.readHeader(this.header, 0);
          }
        }
      } else if (this.dataFilled === 0 && available >= this.dataLength) {
        this.emit(chunk.subarray(offset, offset + this.dataLength));
        offset += this.dataLength;
      } else {
        this.data ??= Buffer.allocUnsafe(this.dataLength);
        const taken = Math.min(this.dataLength - this.dataFilled, available);
        chunk.copy(this.data, this.dataFilled, offset, offset + taken);
        this.dataFilled += taken;
        offset += taken;
        if (this.dataFilled === this.dataLength) this.emit(this.data);
      }
    }
  }

  private readHeader(bytes: Buffer, at: number): void {
    this.dataLength = bytes.readUInt32BE(at);
    this.streamId = bytes.readUInt32BE(at + 4);
    this.type = bytes.readUInt8(at + 8);
    this.flags = bytes.readUInt8(at + 9);
    if (this.dataLength > MAX_DATA_LENGTH) {
      this.state = 'failed';
      this.onError(new TtrpcFrameTooLargeError(this.dataLength, this.streamId, MAX_DATA_LENGTH));
    } else if (this.dataLength === 0) {
      this.emit(EMPTY);
    } else {
      this.state = 'data';
    }
  }

  private emit(data: Buffer): void {
    this.state = 'header';
    this.data = undefined;
    this.dataFilled = 0;
    this.onFrame({ streamId: this.streamId, type: this.type, flags: this.flags, data });
  }
}

const EMPTY = Buffer.alloc(0);
