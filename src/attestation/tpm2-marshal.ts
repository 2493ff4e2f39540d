// TPM 2.0's big-endian wire format: a writer and a reader of its integers and sized buffers (TPM2B_*), and the
// command and response frames (header, handles, authorization area, parameters).
import { TpmError } from '../errors/errors.js';
import { rcName, TPM_RH, TPM_ST } from './tpm2-constants.js';

export class TpmWriter {
  private readonly parts: Buffer[] = [];

  u8(value: number): this {
    this.parts.push(Buffer.of(value));
    return this;
  }

  u16(value: number): this {
    const buffer = Buffer.alloc(2);
    buffer.writeUInt16BE(value);
    this.parts.push(buffer);
    return this;
  }

  u32(value: number): this {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32BE(value >>> 0);
    this.parts.push(buffer);
    return this;
  }

  bytes(data: Uint8Array): this {
    this.parts.push(Buffer.from(data));
    return this;
  }

  /** A TPM2B: a u16 size, then the bytes. */
  sized(data: Uint8Array): this {
    return this.u16(data.length).bytes(data);
  }

  buffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export class TpmReader {
  private at = 0;

  constructor(private readonly data: Buffer, private readonly what = 'TPM structure') {}

  private need(length: number): void {
    if (this.at + length > this.data.length) throw new TpmError(`truncated ${this.what}: ${this.data.length} bytes`);
  }

  u8(): number {
    this.need(1);
    return this.data.readUInt8(this.at++);
  }

  u16(): number {
    this.need(2);
    const value = this.data.readUInt16BE(this.at);
    this.at += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.data.readUInt32BE(this.at);
    this.at += 4;
    return value;
  }

  u64(): bigint {
    this.need(8);
    const value = this.data.readBigUInt64BE(this.at);
    this.at += 8;
    return value;
  }

  bytes(length: number): Buffer {
    this.need(length);
    const value = this.data.subarray(this.at, this.at + length);
    this.at += length;
    return value;
  }

  sized(): Buffer {
    return this.bytes(this.u16());
  }

  get remaining(): number {
    return this.data.length - this.at;
  }

  /** The whole structure has been read: trailing bytes are refused (a structure means exactly its bytes). */
  end(): void {
    if (this.remaining) throw new TpmError(`${this.remaining} unexpected trailing bytes after the ${this.what}`);
  }
}

/** One authorization of a command's area: the password session with an empty password, or a session's handle. */
export interface Authorization {
  session: number;
  /** TPMA_SESSION: continueSession is bit 0. */
  attributes?: number;
  hmac?: Uint8Array;
}

export const PASSWORD: Authorization = { session: TPM_RH.RS_PW };

/** A whole command: tag, size, code, handles, the authorization area when there are authorizations, parameters. */
export function tpmCommand(code: number, handles: number[], params: Buffer, auths: Authorization[] = []): Buffer {
  const body = new TpmWriter();
  for (const handle of handles) body.u32(handle);
  if (auths.length) {
    const area = new TpmWriter();
    for (const auth of auths) area.u32(auth.session).sized(Buffer.alloc(0)).u8(auth.attributes ?? 0).sized(auth.hmac ?? Buffer.alloc(0));
    const areaBytes = area.buffer();
    body.u32(areaBytes.length).bytes(areaBytes);
  }
  body.bytes(params);
  const bodyBytes = body.buffer();
  return new TpmWriter().u16(auths.length ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS).u32(10 + bodyBytes.length).u32(code).bytes(bodyBytes).buffer();
}

export interface TpmResponse {
  /** The handles the command returns (as many as it was said to). */
  handles: number[];
  /** The response parameters, without the authorization area. */
  params: TpmReader;
}

/** Reads a response to a command that returns `handleCount` handles; a response code other than success throws. */
export function tpmResponse(response: Buffer, handleCount: number, command: string): TpmResponse {
  if (response.length < 10) throw new TpmError(`${command}: a ${response.length}-byte response from the TPM`);
  const tag = response.readUInt16BE(0);
  const size = response.readUInt32BE(2);
  const rc = response.readUInt32BE(6);
  if (size !== response.length) throw new TpmError(`${command}: the TPM's response says ${size} bytes, ${response.length} came`);
  if (rc !== 0) throw new TpmError(`${command} failed: TPM response code ${rcName(rc)}`, rc);
  const reader = new TpmReader(response.subarray(10), `${command} response`);
  const handles = Array.from({ length: handleCount }, () => reader.u32());
  if (tag === TPM_ST.SESSIONS) {
    const paramSize = reader.u32();
    return { handles, params: new TpmReader(reader.bytes(paramSize), `${command} response`) };
  }
  return { handles, params: new TpmReader(reader.bytes(reader.remaining), `${command} response`) };
}
