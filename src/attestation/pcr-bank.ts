// SHA-256 PCRs as a TPM keeps them: each starts at zero and an extend replaces it with the hash of its value and
// the new digest, so a PCR's value is the whole ordered list of what was measured into it.
import { createHash } from 'node:crypto';

export const PCR_BYTES = 32;

export function sha256(...parts: Array<Uint8Array | string>): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

export function extendPcr(value: Buffer, digest: Buffer): Buffer {
  return sha256(value, digest);
}

/** The value of a PCR that starts at zero and has had `digests` extended into it, in order. */
export function pcrAfter(digests: Buffer[]): Buffer {
  return digests.reduce(extendPcr, Buffer.alloc(PCR_BYTES));
}
