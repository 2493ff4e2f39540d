// Content digests (algorithm:hex) and streaming verification against the digest that was asked for.
import { DigestMismatchError } from '../errors/errors.js';
import { createHash, type Hash } from 'node:crypto';

const ALGORITHMS: Record<string, number> = { sha256: 64, sha512: 128 };

export interface Digest {
  algorithm: string;
  hex: string;
}

export function parseDigest(digest: string): Digest {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const length = ALGORITHMS[algorithm];
  if (colon < 0 || length === undefined) throw new Error(`digest "${digest}" is not sha256 or sha512`);
  if (hex.length !== length || !/^[0-9a-f]+$/.test(hex)) throw new Error(`digest "${digest}" is malformed`);
  return { algorithm, hex };
}

export function digestHasher(digest: string): Hash {
  return createHash(parseDigest(digest).algorithm);
}

export function digestOf(data: Buffer, algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Throws DigestMismatchError unless `hash` (fed with the content) matches `expected`. */
export function checkDigest(hash: Hash, expected: string): void {
  const { algorithm } = parseDigest(expected);
  const actual = `${algorithm}:${hash.digest('hex')}`;
  if (actual !== expected) throw new DigestMismatchError(expected, actual);
}
