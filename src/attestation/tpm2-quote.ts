// A TPM2_Quote as the verifier reads it: the TPMS_ATTEST the TPM signed (its magic, which no outside data can
// carry, the qualifying data, the PCRs selected and their digest) and the TPMT_SIGNATURE over it (ECDSA or
// RSASSA with SHA-256), checked against the attestation key.
import { verify, type KeyObject } from 'node:crypto';
import { TpmError } from '../errors/errors.js';
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from './tpm2-constants.js';
import { TpmReader } from './tpm2-marshal.js';

export interface QuoteInfo {
  qualifiedSigner: Buffer;
  extraData: Buffer;
  resetCount: number;
  restartCount: number;
  /** The SHA-256 PCRs quoted, lowest first. */
  pcrs: number[];
  pcrDigest: Buffer;
}

export function parseQuote(message: Buffer): QuoteInfo {
  const r = new TpmReader(message, 'TPMS_ATTEST');
  if (r.u32() !== TPM_GENERATED_VALUE) throw new TpmError('the quoted message was not made by a TPM (no TPM_GENERATED_VALUE)');
  if (r.u16() !== TPM_ST.ATTEST_QUOTE) throw new TpmError('the quoted message is not a quote (TPM_ST_ATTEST_QUOTE)');
  const qualifiedSigner = r.sized();
  const extraData = r.sized();
  r.u64(); // clock
  const resetCount = r.u32();
  const restartCount = r.u32();
  r.u8(); // safe
  r.u64(); // firmwareVersion
  const pcrs: number[] = [];
  const banks = r.u32();
  for (let bank = 0; bank < banks; bank++) {
    const hash = r.u16();
    const select = r.bytes(r.u8());
    for (let i = 0; i < select.length * 8; i++) {
      if (!(select[i >> 3]! & (1 << (i & 7)))) continue;
      if (hash !== TPM_ALG.SHA256) throw new TpmError(`the quote covers PCRs of hash algorithm 0x${hash.toString(16)}: only SHA-256 is taken`);
      pcrs.push(i);
    }
  }
  const pcrDigest = r.sized();
  r.end();
  return { qualifiedSigner, extraData, resetCount, restartCount, pcrs, pcrDigest };
}

function leftPad(value: Buffer, bytes: number): Buffer {
  if (value.length > bytes) throw new TpmError(`an ECDSA signature part of ${value.length} bytes`);
  return Buffer.concat([Buffer.alloc(bytes - value.length), value]);
}

/** Whether `signature` (a marshalled TPMT_SIGNATURE) is `key`'s over `message`. */
export function quoteSignedBy(message: Buffer, signature: Buffer, key: KeyObject): boolean {
  const r = new TpmReader(signature, 'TPMT_SIGNATURE');
  const algorithm = r.u16();
  if (r.u16() !== TPM_ALG.SHA256) throw new TpmError('the quote is signed with a hash other than SHA-256');
  if (algorithm === TPM_ALG.ECDSA) {
    const rs = Buffer.concat([leftPad(r.sized(), 32), leftPad(r.sized(), 32)]);
    r.end();
    return verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, rs);
  }
  if (algorithm === TPM_ALG.RSASSA) {
    const sig = r.sized();
    r.end();
    return verify('sha256', message, key, sig);
  }
  throw new TpmError(`the quote is signed with algorithm 0x${algorithm.toString(16)} (ECDSA or RSASSA expected)`);
}
