// TPMT_PUBLIC, the public area of a TPM key, for the ECC NIST P-256 keys runbox uses: the endorsement key (the TCG
// EK Credential Profile's low-range template), the attestation key (a restricted signing key) and the TEE key (an
// unrestricted ECDH key). Written and read in TPM order, named as the TPM names objects, and turned into node:crypto
// keys.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { TpmError } from '../errors/errors.js';
import { TPM_ALG, TPM_ECC_NIST_P256, TPMA_OBJECT } from './tpm2-constants.js';
import { TpmReader, TpmWriter } from './tpm2-marshal.js';

export interface EccPublic {
  nameAlg: number;
  attributes: number;
  authPolicy: Buffer;
  /** TPMT_SYM_DEF_OBJECT: AES-128-CFB for a storage-like key (the EK), absent (TPM_ALG_NULL) otherwise. */
  symmetric?: { algorithm: number; keyBits: number; mode: number };
  /** TPMT_ECC_SCHEME: ECDSA with its hash for a signing key, absent (TPM_ALG_NULL) otherwise. */
  scheme?: { algorithm: number; hash: number };
  curve: number;
  x: Buffer;
  y: Buffer;
}

/** PolicySecret(TPM_RH_ENDORSEMENT): the EK's policy, so that only the endorsement hierarchy's owner uses it. */
export const EK_AUTH_POLICY = Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex');

/** The ECC P-256 EK template (TCG EK Credential Profile 2.0, template L-2): TPM2_CreatePrimary makes the same key every time. */
export function ekTemplate(): EccPublic {
  return {
    nameAlg: TPM_ALG.SHA256,
    attributes: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin | TPMA_OBJECT.adminWithPolicy
      | TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt,
    authPolicy: EK_AUTH_POLICY,
    symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
    curve: TPM_ECC_NIST_P256,
    x: Buffer.alloc(32),
    y: Buffer.alloc(32),
  };
}

/** The attributes an attestation key must have: it lives only in its TPM and signs only what the TPM made. */
export const AK_ATTRIBUTES = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin
  | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.restricted | TPMA_OBJECT.sign;

export function writePublic(key: EccPublic): Buffer {
  const w = new TpmWriter().u16(TPM_ALG.ECC).u16(key.nameAlg).u32(key.attributes).sized(key.authPolicy);
  if (key.symmetric) w.u16(key.symmetric.algorithm).u16(key.symmetric.keyBits).u16(key.symmetric.mode);
  else w.u16(TPM_ALG.NULL);
  if (key.scheme) w.u16(key.scheme.algorithm).u16(key.scheme.hash);
  else w.u16(TPM_ALG.NULL);
  return w.u16(key.curve).u16(TPM_ALG.NULL).sized(key.x).sized(key.y).buffer();
}

/** Reads a TPMT_PUBLIC (an ECC key's: anything else is refused). */
export function readPublic(reader: TpmReader): EccPublic {
  const type = reader.u16();
  if (type !== TPM_ALG.ECC) throw new TpmError(`a TPM public area of type 0x${type.toString(16)}: only ECC keys are taken`);
  const nameAlg = reader.u16();
  const attributes = reader.u32();
  const authPolicy = reader.sized();
  const symAlgorithm = reader.u16();
  const symmetric = symAlgorithm === TPM_ALG.NULL ? undefined : { algorithm: symAlgorithm, keyBits: reader.u16(), mode: reader.u16() };
  const schemeAlgorithm = reader.u16();
  const scheme = schemeAlgorithm === TPM_ALG.NULL ? undefined : { algorithm: schemeAlgorithm, hash: reader.u16() };
  const curve = reader.u16();
  const kdf = reader.u16();
  if (kdf !== TPM_ALG.NULL) reader.u16();
  return { nameAlg, attributes, authPolicy, ...(symmetric && { symmetric }), ...(scheme && { scheme }), curve, x: reader.sized(), y: reader.sized() };
}

/** A TPM2B_PUBLIC's bytes (as TPM2_ReadPublic and TPM2_CreatePrimary return it) read whole. */
export function readSizedPublic(data: Buffer): EccPublic {
  const outer = new TpmReader(data, 'TPM2B_PUBLIC');
  const inner = new TpmReader(outer.sized(), 'TPMT_PUBLIC');
  outer.end();
  const key = readPublic(inner);
  inner.end();
  return key;
}

export function sizedPublic(key: EccPublic): Buffer {
  return new TpmWriter().sized(writePublic(key)).buffer();
}

/** The object's TPM name: its name algorithm, then that hash of its public area (SHA-256 only). */
export function objectName(key: EccPublic): Buffer {
  if (key.nameAlg !== TPM_ALG.SHA256) throw new TpmError(`a TPM key named with algorithm 0x${key.nameAlg.toString(16)}: only SHA-256 is taken`);
  return Buffer.concat([Buffer.of(0x00, 0x0b), createHash('sha256').update(writePublic(key)).digest()]);
}

function coordinate(value: Buffer): Buffer {
  if (value.length > 32) throw new TpmError(`a P-256 coordinate of ${value.length} bytes`);
  return Buffer.concat([Buffer.alloc(32 - value.length), value]);
}

/** The key as node:crypto takes it (P-256 only). */
export function publicKeyOf(key: EccPublic): KeyObject {
  if (key.curve !== TPM_ECC_NIST_P256) throw new TpmError(`a TPM key on ECC curve 0x${key.curve.toString(16)}: only NIST P-256 is taken`);
  return createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: coordinate(key.x).toString('base64url'), y: coordinate(key.y).toString('base64url') },
    format: 'jwk',
  });
}

/** The point of a P-256 node:crypto key, as a TPM writes it. */
export function pointOf(key: KeyObject): { x: Buffer; y: Buffer } {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.x || !jwk.y) throw new TpmError('not a P-256 key');
  return { x: Buffer.from(jwk.x, 'base64url'), y: Buffer.from(jwk.y, 'base64url') };
}
