// TPM2_MakeCredential done by the verifier in software (TPM 2.0 Part 1, "Credential Protection"; Part 3,
// MakeCredential): a secret encrypted so that only the TPM holding an ECC endorsement key can recover it, and only
// for a key of the given name that lives in that same TPM (TPM2_ActivateCredential). Recovering it proves that the
// attestation key chains to the EK, which the EK certificate ties to a TPM maker.
import { createCipheriv, createECDH, createHash, createHmac } from 'node:crypto';
import { TpmError } from '../errors/errors.js';
import { TPM_ALG } from './tpm2-constants.js';
import { TpmWriter } from './tpm2-marshal.js';
import type { EccPublic } from './tpm2-public.js';

const DIGEST_BYTES = 32;

/** A label as the TPM's KDFs take it: its bytes and a terminating zero. */
function label(text: string): Buffer {
  return Buffer.from(`${text}\0`, 'latin1');
}

function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}

/** KDFa (SP 800-108 counter mode, HMAC-SHA-256), TPM 2.0 Part 1 11.4.10.2. */
export function kdfa(key: Buffer, use: string, contextU: Buffer, contextV: Buffer, bits: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 1; blocks.length * DIGEST_BYTES * 8 < bits; i++) {
    blocks.push(createHmac('sha256', key).update(Buffer.concat([u32(i), label(use), contextU, contextV, u32(bits)])).digest());
  }
  return Buffer.concat(blocks).subarray(0, bits / 8);
}

/** KDFe (SP 800-56A concatenation, SHA-256), TPM 2.0 Part 1 11.4.10.3. */
export function kdfe(z: Buffer, use: string, partyU: Buffer, partyV: Buffer, bits: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 1; blocks.length * DIGEST_BYTES * 8 < bits; i++) {
    blocks.push(createHash('sha256').update(Buffer.concat([u32(i), z, label(use), partyU, partyV])).digest());
  }
  return Buffer.concat(blocks).subarray(0, bits / 8);
}

export interface Credential {
  /** TPM2B_ID_OBJECT's contents: the integrity HMAC (sized) and the encrypted credential. */
  idObject: Buffer;
  /** TPM2B_ENCRYPTED_SECRET's contents: the ephemeral ECC point (TPMS_ECC_POINT). */
  encryptedSecret: Buffer;
}

/** The credential `secret` made to `ek` (an ECC P-256 storage key: the EK template's AES-128-CFB) for `name`. */
export function makeCredential(ek: EccPublic, name: Buffer, secret: Buffer): Credential {
  if (ek.nameAlg !== TPM_ALG.SHA256 || ek.symmetric?.algorithm !== TPM_ALG.AES || ek.symmetric.keyBits !== 128 || ek.symmetric.mode !== TPM_ALG.CFB) {
    throw new TpmError('a credential is made only to an ECC EK with SHA-256 and AES-128-CFB (the EK template\'s)');
  }
  if (secret.length > DIGEST_BYTES) throw new TpmError(`a credential holds at most ${DIGEST_BYTES} bytes`);
  const ephemeral = createECDH('prime256v1');
  ephemeral.generateKeys();
  const ekPoint = Buffer.concat([Buffer.of(4), ek.x, ek.y]);
  const z = ephemeral.computeSecret(ekPoint);
  const point = ephemeral.getPublicKey();
  const [ex, ey] = [point.subarray(1, 33), point.subarray(33, 65)];
  const seed = kdfe(z, 'IDENTITY', ex, ek.x, DIGEST_BYTES * 8);
  const symKey = kdfa(seed, 'STORAGE', name, Buffer.alloc(0), 128);
  const cipher = createCipheriv('aes-128-cfb', symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(new TpmWriter().sized(secret).buffer()), cipher.final()]);
  const hmacKey = kdfa(seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), DIGEST_BYTES * 8);
  const integrity = createHmac('sha256', hmacKey).update(Buffer.concat([encIdentity, name])).digest();
  return {
    idObject: new TpmWriter().sized(integrity).bytes(encIdentity).buffer(),
    encryptedSecret: new TpmWriter().sized(ex).sized(ey).buffer(),
  };
}
