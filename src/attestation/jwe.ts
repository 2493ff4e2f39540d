// A key broker resource as trustee returns it: a JWE (flattened JSON) encrypted to the TEE's ephemeral EC P-256 key
// with ECDH-ES+A256KW (Concat KDF over the ECDH secret, the content key wrapped with AES-256 key wrap) and A256GCM,
// whose associated data is the protected header as sent (RFC 7516, RFC 7518; trustee's kbs/src/jwe).
import { createCipheriv, createDecipheriv, createECDH, createHash, randomBytes } from 'node:crypto';
import { KbsError } from '../errors/errors.js';

/** The TEE's key as the guest sends it in the runtime data (a JWK). */
export interface TeePublicKey {
  kty: 'EC';
  crv: 'P-256';
  alg: 'ECDH-ES+A256KW';
  x: string;
  y: string;
}

/** trustee's kbs_types::Response. */
export interface JweResponse {
  protected: string;
  encrypted_key: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

export const JWE_ALG = 'ECDH-ES+A256KW';
export const JWE_ENC = 'A256GCM';
/** RFC 3394's default initial value, which unwrapping must recover. */
const KEY_WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

/** Concat KDF (NIST SP 800-56A) as JWA 4.6.2 runs it, with empty PartyUInfo and PartyVInfo, as trustee does. */
export function concatKdf(z: Buffer, algorithm: string, bytes: number): Buffer {
  const blocks: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return b;
  };
  for (let i = 1; blocks.length * 32 < bytes; i++) {
    blocks.push(createHash('sha256').update(Buffer.concat([u32(i), z, u32(algorithm.length), Buffer.from(algorithm), u32(0), u32(0), u32(bytes * 8)])).digest());
  }
  return Buffer.concat(blocks).subarray(0, bytes);
}

function point(key: TeePublicKey): Buffer {
  const x = Buffer.from(key.x, 'base64url');
  const y = Buffer.from(key.y, 'base64url');
  if (x.length !== 32 || y.length !== 32) throw new KbsError('the TEE key is not a P-256 point');
  return Buffer.concat([Buffer.of(4), x, y]);
}

export function encryptToTee(plaintext: Buffer, tee: TeePublicKey): JweResponse {
  if (tee.kty !== 'EC' || tee.crv !== 'P-256' || tee.alg !== JWE_ALG) throw new KbsError(`the TEE key is not an EC P-256 key for ${JWE_ALG}`);
  const ephemeral = createECDH('prime256v1');
  ephemeral.generateKeys();
  let z: Buffer;
  try {
    z = ephemeral.computeSecret(point(tee));
  } catch {
    throw new KbsError('the TEE key is not a point of P-256');
  }
  const kek = concatKdf(z, JWE_ALG, 32);
  const cek = randomBytes(32);
  const wrap = createCipheriv('id-aes256-wrap', kek, KEY_WRAP_IV);
  const encryptedKey = Buffer.concat([wrap.update(cek), wrap.final()]);
  const epk = ephemeral.getPublicKey();
  const header = {
    alg: JWE_ALG,
    enc: JWE_ENC,
    epk: { crv: 'P-256', kty: 'EC', x: epk.subarray(1, 33).toString('base64url'), y: epk.subarray(33, 65).toString('base64url') },
  };
  const protectedHeader = Buffer.from(JSON.stringify(header)).toString('base64url');
  const iv = randomBytes(12);
  const gcm = createCipheriv('aes-256-gcm', cek, iv);
  gcm.setAAD(Buffer.from(protectedHeader, 'ascii'));
  const ciphertext = Buffer.concat([gcm.update(plaintext), gcm.final()]);
  cek.fill(0);
  return {
    protected: protectedHeader,
    encrypted_key: encryptedKey.toString('base64url'),
    iv: iv.toString('base64url'),
    ciphertext: ciphertext.toString('base64url'),
    tag: gcm.getAuthTag().toString('base64url'),
  };
}

/** The other side, for tests and tools that hold the TEE key's private half (`ecdh`: its node:crypto ECDH). */
export function decryptFromTee(jwe: JweResponse, ecdh: { computeSecret(point: Buffer): Buffer }): Buffer {
  const header = JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8')) as { alg: string; enc: string; epk: { x: string; y: string } };
  if (header.alg !== JWE_ALG || header.enc !== JWE_ENC) throw new KbsError(`a JWE of ${header.alg}/${header.enc}`);
  const z = ecdh.computeSecret(Buffer.concat([Buffer.of(4), Buffer.from(header.epk.x, 'base64url'), Buffer.from(header.epk.y, 'base64url')]));
  const unwrap = createDecipheriv('id-aes256-wrap', concatKdf(z, JWE_ALG, 32), KEY_WRAP_IV);
  const cek = Buffer.concat([unwrap.update(Buffer.from(jwe.encrypted_key, 'base64url')), unwrap.final()]);
  const gcm = createDecipheriv('aes-256-gcm', cek, Buffer.from(jwe.iv, 'base64url'));
  gcm.setAAD(Buffer.from(jwe.protected, 'ascii'));
  gcm.setAuthTag(Buffer.from(jwe.tag, 'base64url'));
  return Buffer.concat([gcm.update(Buffer.from(jwe.ciphertext, 'base64url')), gcm.final()]);
}
