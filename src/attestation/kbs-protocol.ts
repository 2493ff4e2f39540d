// trustee's Key Broker Service protocol, RCAR, as its messages go over HTTP (kbs-types): Request (the TEE type,
// its parameters) → Challenge (a nonce, parameters) → Attestation (runtime data: the nonce and the TEE's ephemeral
// key; the TEE's evidence, whose report data is the hash of the runtime data) → Response (a token); then each
// resource, a JWE encrypted to the TEE key. What runbox's key broker reads is checked here, field by field.
import { createHash } from 'node:crypto';
import { KbsError } from '../errors/errors.js';
import { JWE_ALG, type TeePublicKey } from './jwe.js';

export const KBS_PROTOCOL_VERSION = '0.1.0';
export const KBS_PREFIX = '/kbs/v0';
export const SESSION_COOKIE = 'kbs-session-id';

/** Where a host's key broker listens unless told otherwise: for guests, and for its administrator. */
export const KBS_SOCKET = process.env.RUNBOX_ENCLAVE_KBS ?? '/run/runbox-kbs/kbs.sock';
export const KBS_ADMIN_SOCKET = process.env.RUNBOX_ENCLAVE_KBS_ADMIN ?? '/run/runbox-kbs/admin.sock';

/** The TEE types of the protocol runbox's broker verifies: `tpm` (a vTPM here), `snp`, `tdx`. */
export type KbsTee = 'tpm' | 'snp' | 'tdx';

export interface KbsRequest {
  version: string;
  tee: KbsTee;
  'extra-params': unknown;
}

export interface KbsChallenge {
  nonce: string;
  'extra-params': unknown;
}

export interface RuntimeData {
  nonce: string;
  'tee-pubkey': TeePublicKey;
}

export interface KbsAttestation {
  'init-data'?: unknown;
  'runtime-data': RuntimeData;
  'tee-evidence': unknown;
}

/** trustee's ErrorInformation: what a refused request is answered with. */
export interface ErrorInformation {
  type: string;
  detail: string;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new KbsError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

export function parseJsonBody(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new KbsError(`the ${what} is not JSON`);
  }
}

export function parseRequest(value: unknown): KbsRequest {
  const request = object(value, 'the Request');
  if (request.version !== KBS_PROTOCOL_VERSION) {
    throw new KbsError(`KBS protocol version ${JSON.stringify(request.version)}: this key broker speaks ${KBS_PROTOCOL_VERSION}`);
  }
  if (!['tpm', 'snp', 'tdx'].includes(request.tee as string)) throw new KbsError(`TEE ${JSON.stringify(request.tee)}: this key broker verifies tpm, snp and tdx evidence`);
  return request as unknown as KbsRequest;
}

export function parseAttestation(value: unknown): KbsAttestation {
  const attestation = object(value, 'the Attestation');
  const runtime = object(attestation['runtime-data'], 'the Attestation\'s runtime-data');
  if (typeof runtime.nonce !== 'string') throw new KbsError('the runtime data has no nonce');
  const key = object(runtime['tee-pubkey'], 'the runtime data\'s tee-pubkey');
  if (key.kty !== 'EC' || key.crv !== 'P-256' || key.alg !== JWE_ALG || typeof key.x !== 'string' || typeof key.y !== 'string') {
    throw new KbsError(`the TEE key is not an EC P-256 JWK for ${JWE_ALG}`);
  }
  if (attestation['tee-evidence'] === undefined) throw new KbsError('the Attestation has no tee-evidence');
  return attestation as unknown as KbsAttestation;
}

/** JSON with every object's keys in order and no space (serde_json's default map), as both sides hash it. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The report data the evidence must carry: SHA-256 of the runtime data (the nonce and the TEE key). */
export function reportData(runtime: RuntimeData): Buffer {
  return createHash('sha256').update(canonicalJson({ nonce: runtime.nonce, 'tee-pubkey': runtime['tee-pubkey'] })).digest();
}
