// X.509 v3 certificates signed with an ECDSA P-256 key, written in DER by hand (node:crypto reads certificates but
// does not make them): enough for a vTPM's EK certificate and the CA that signs it, as a TPM manufacturer's would be.
import { randomBytes, sign, type KeyObject } from 'node:crypto';

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.of(tag), length(body.length), body]);
}

const sequence = (...items: Buffer[]) => der(0x30, ...items);
const set = (...items: Buffer[]) => der(0x31, ...items);
const explicit = (n: number, item: Buffer) => der(0xa0 | n, item);

function integer(value: Buffer): Buffer {
  let bytes = value;
  while (bytes.length > 1 && bytes[0] === 0 && !(bytes[1]! & 0x80)) bytes = bytes.subarray(1);
  return der(0x02, bytes[0]! & 0x80 ? Buffer.concat([Buffer.of(0), bytes]) : bytes);
}

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [a! * 40 + b!];
  for (const arc of rest) {
    const groups: number[] = [];
    for (let v = arc; ; v = Math.floor(v / 128)) {
      groups.unshift(v % 128);
      if (v < 128) break;
    }
    out.push(...groups.map((g, i) => (i < groups.length - 1 ? g | 0x80 : g)));
  }
  return der(0x06, Buffer.from(out));
}

function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  // UTCTime until 2049, GeneralizedTime after (RFC 5280 4.1.2.5).
  return date.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(`${iso.slice(2)}Z`)) : der(0x18, Buffer.from(`${iso}Z`));
}

function name(commonName: string): Buffer {
  return sequence(set(sequence(oid('2.5.4.3'), der(0x0c, Buffer.from(commonName, 'utf8')))));
}

function bitString(bytes: Buffer, unusedBits = 0): Buffer {
  return der(0x03, Buffer.of(unusedBits), bytes);
}

const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2'));

/** keyUsage bits (RFC 5280 4.2.1.3), as the BIT STRING's first byte. */
export const KEY_USAGE = { keyAgreement: 0x08, keyCertSign: 0x04, cRLSign: 0x02 } as const;

export interface CertificateFields {
  subject: string;
  issuer: string;
  publicKey: KeyObject;
  signingKey: KeyObject;
  ca: boolean;
  keyUsage: number;
  notBefore: Date;
  notAfter: Date;
}

export function buildCertificate(fields: CertificateFields): Buffer {
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const extensions = sequence(
    sequence(oid('2.5.29.19'), der(0x01, Buffer.of(0xff)), der(0x04, fields.ca ? sequence(der(0x01, Buffer.of(0xff))) : sequence())),
    sequence(oid('2.5.29.15'), der(0x01, Buffer.of(0xff)), der(0x04, bitString(Buffer.of(fields.keyUsage), 1))),
  );
  const tbs = sequence(
    explicit(0, integer(Buffer.of(2))),
    integer(serial),
    ECDSA_WITH_SHA256,
    name(fields.issuer),
    sequence(time(fields.notBefore), time(fields.notAfter)),
    name(fields.subject),
    fields.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, extensions),
  );
  return sequence(tbs, ECDSA_WITH_SHA256, bitString(sign('sha256', tbs, fields.signingKey)));
}
