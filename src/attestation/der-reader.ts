// A DER reader for what node:crypto's X509Certificate does not expose: a certificate's extensions by OID (an AMD
// VCEK's TCB levels and chip id). Lengths are checked against their enclosing element.
import { AttestationError } from '../errors/errors.js';

export interface DerElement {
  tag: number;
  content: Buffer;
  /** The whole element, tag and length included. */
  raw: Buffer;
}

export function readDer(data: Buffer, at = 0): DerElement & { next: number } {
  const fail = (): never => {
    throw new AttestationError('a certificate that is not DER');
  };
  if (at + 2 > data.length) fail();
  const tag = data[at]!;
  let length = data[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > data.length) fail();
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + data[start + i]!;
    start += bytes;
  }
  if (start + length > data.length) fail();
  return { tag, content: data.subarray(start, start + length), raw: data.subarray(at, start + length), next: start + length };
}

export function derChildren(element: DerElement): DerElement[] {
  const children: DerElement[] = [];
  for (let at = 0; at < element.content.length;) {
    const child = readDer(element.content, at);
    children.push(child);
    at = child.next;
  }
  return children;
}

function oidText(content: Buffer): string {
  const arcs = [Math.floor(content[0]! / 40), content[0]! % 40];
  let value = 0;
  for (const byte of content.subarray(1)) {
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  return arcs.join('.');
}

/** A certificate's extensions: OID → the extension value's bytes (the OCTET STRING's content). */
export function certificateExtensions(der: Buffer): Map<string, Buffer> {
  const tbs = derChildren(readDer(der))[0];
  const extensions = new Map<string, Buffer>();
  const wrapper = tbs ? derChildren(tbs).find((child) => child.tag === 0xa3) : undefined;
  if (!wrapper) return extensions;
  for (const extension of derChildren(derChildren(wrapper)[0]!)) {
    const parts = derChildren(extension);
    extensions.set(oidText(parts[0]!.content), parts[parts.length - 1]!.content);
  }
  return extensions;
}

/** A small DER INTEGER's value. */
export function derInteger(value: Buffer): number {
  const element = readDer(value);
  if (element.tag !== 0x02 || element.content.length > 6) throw new AttestationError('not a small DER INTEGER');
  return element.content.reduce((n, byte) => n * 256 + byte, 0);
}
