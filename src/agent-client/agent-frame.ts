// Framing of the agent protocol (native/agent/PROTOCOL.md): a 10-byte header — payload length u32 BE, id u32 BE,
// type u8, flags u8 — then the payload.
import { AgentFrameTooLargeError } from '../errors/errors.js';
import {
  FRAME_EVENT, FRAME_HEADER_LENGTH, FRAME_MAX_PAYLOAD, FRAME_REQUEST, FRAME_RESPONSE, FRAME_STDERR, FRAME_STDIN, FRAME_STDOUT,
} from '../generated/facts.js';

export const HEADER_LENGTH = FRAME_HEADER_LENGTH;
export const MAX_PAYLOAD = FRAME_MAX_PAYLOAD;

export enum FrameType {
  Request = FRAME_REQUEST,
  Response = FRAME_RESPONSE,
  Event = FRAME_EVENT,
  Stdin = FRAME_STDIN,
  Stdout = FRAME_STDOUT,
  Stderr = FRAME_STDERR,
}

export interface Frame {
  id: number;
  type: FrameType;
  payload: Buffer;
}

export function encodeFrame(id: number, type: FrameType, payload: Buffer): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new AgentFrameTooLargeError(payload.length, MAX_PAYLOAD);
  const header = Buffer.allocUnsafe(HEADER_LENGTH);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt32BE(id >>> 0, 4);
  header.writeUInt8(type, 8);
  header.writeUInt8(0, 9);
  return Buffer.concat([header, payload]);
}

/** Turns a byte stream back into frames, whatever the chunking. Throws on a frame over the size limit. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < HEADER_LENGTH) break;
      const head = this.peek(HEADER_LENGTH);
      const length = head.readUInt32BE(0);
      if (length > MAX_PAYLOAD) throw new Error(`agent sent a frame of ${length} bytes (limit ${MAX_PAYLOAD})`);
      if (this.buffered < HEADER_LENGTH + length) break;
      const whole = this.take(HEADER_LENGTH + length);
      const type = whole.readUInt8(8);
      if (type < FrameType.Request || type > FrameType.Stderr) throw new Error(`agent sent a frame of unknown type ${type}`);
      frames.push({ id: whole.readUInt32BE(4), type, payload: whole.subarray(HEADER_LENGTH) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return all.subarray(0, n);
  }
}
