// The verifier of Intel TDX evidence (KBS tee `tdx`): a DCAP quote (version 4) whose TD report is signed by the
// quote's attestation key, that key vouched for by the Quoting Enclave's report (its REPORT_DATA the hash of the key
// and the QE's authentication data), that report signed by the platform's PCK certificate, and the PCK chain ending
// at Intel's SGX Root CA (pinned by its SHA-256 fingerprint); then REPORTDATA is the hash of this session's runtime
// data, the TD is not a debug TD, and MRTD and MRCONFIGID (the initdata) are a set of reference values'. What
// trustee adds from Intel's collateral (TCB status, QE identity, revocation lists) is not fetched here.
import { createHash, createPublicKey, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { AttestationError } from '../errors/errors.js';
import type { ReferenceValues } from './reference-values.js';

const HEADER = 48;
const BODY = 584;
/** Intel SGX Root CA (CN=Intel SGX Root CA, O=Intel Corporation; SHA-1 8bd31eb1d63ce37382c0ffaa0d8200a3011ad6ff), by its SHA-256. */
export const INTEL_SGX_ROOT_CA_SHA256 = '44A0196B2B99F889B8E149E95B807A350E7424964399E885A7CBB8CCFAB674D3';

export interface TdxQuote {
  version: number;
  teeType: number;
  mrSeam: Buffer;
  tdAttributes: Buffer;
  mrTd: Buffer;
  mrConfigId: Buffer;
  rtmrs: Buffer[];
  reportData: Buffer;
  signed: Buffer;
  signature: Buffer;
  attestationKey: Buffer;
  qeReport: Buffer;
  qeReportSignature: Buffer;
  qeAuthData: Buffer;
  pckChain: X509Certificate[];
}

export function parseTdxQuote(raw: Buffer): TdxQuote {
  const fail = (what: string): never => {
    throw new AttestationError(`the TDX quote: ${what}`);
  };
  if (raw.length < HEADER + BODY + 4) fail(`${raw.length} bytes is too short`);
  const version = raw.readUInt16LE(0);
  if (version !== 4) fail(`version ${version} (4 is read)`);
  if (raw.readUInt16LE(2) !== 2) fail('its attestation key is not ECDSA P-256');
  const teeType = raw.readUInt32LE(4);
  if (teeType !== 0x81) fail(`TEE type 0x${teeType.toString(16)} is not TDX`);
  const body = raw.subarray(HEADER, HEADER + BODY);
  const sigLength = raw.readUInt32LE(HEADER + BODY);
  const sig = raw.subarray(HEADER + BODY + 4, HEADER + BODY + 4 + sigLength);
  if (sig.length !== sigLength || sigLength < 128 + 6) fail('its signature data is truncated');
  let at = 128;
  if (sig.readUInt16LE(at) !== 6) fail('its certification data is not the Quoting Enclave\'s report (type 6)');
  at += 6;
  const qeReport = sig.subarray(at, at + 384);
  const qeReportSignature = sig.subarray(at + 384, at + 448);
  at += 448;
  const authLength = sig.readUInt16LE(at);
  const qeAuthData = sig.subarray(at + 2, at + 2 + authLength);
  at += 2 + authLength;
  if (sig.readUInt16LE(at) !== 5) fail('its QE certification data is not a PCK certificate chain (type 5)');
  const pem = sig.subarray(at + 6, at + 6 + sig.readUInt32LE(at + 2)).toString('latin1');
  const pckChain = [...pem.matchAll(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
  if (pckChain.length < 2) fail('its PCK certificate chain is incomplete');
  return {
    version, teeType,
    mrSeam: body.subarray(16, 64), tdAttributes: body.subarray(120, 128), mrTd: body.subarray(136, 184),
    mrConfigId: body.subarray(184, 232), rtmrs: [0, 1, 2, 3].map((i) => body.subarray(328 + 48 * i, 376 + 48 * i)),
    reportData: body.subarray(520, 584),
    signed: raw.subarray(0, HEADER + BODY), signature: sig.subarray(0, 64), attestationKey: sig.subarray(64, 128),
    qeReport, qeReportSignature, qeAuthData, pckChain,
  };
}

function p256(point: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: point.subarray(0, 32).toString('base64url'), y: point.subarray(32, 64).toString('base64url') }, format: 'jwk' });
}

/** The quote's signatures and certificates, from the TD report up to Intel's root; what fails is named. */
export function verifyTdxQuote(quote: TdxQuote): void {
  const chain = quote.pckChain;
  const root = chain[chain.length - 1]!;
  if (root.fingerprint256.replaceAll(':', '') !== INTEL_SGX_ROOT_CA_SHA256) throw new AttestationError('the TDX quote\'s PCK chain does not end at Intel\'s SGX Root CA');
  for (let i = 0; i < chain.length; i++) {
    const issuer = chain[Math.min(i + 1, chain.length - 1)]!;
    if (!chain[i]!.verify(issuer.publicKey)) throw new AttestationError(`the TDX quote's PCK chain is broken at "${chain[i]!.subject.split('\n').find((l) => l.startsWith('CN='))}"`);
  }
  if (!verify('sha256', quote.qeReport, { key: chain[0]!.publicKey, dsaEncoding: 'ieee-p1363' }, quote.qeReportSignature)) {
    throw new AttestationError('the Quoting Enclave\'s report is not signed by the PCK certificate');
  }
  const binding = createHash('sha256').update(Buffer.concat([quote.attestationKey, quote.qeAuthData])).digest();
  if (!quote.qeReport.subarray(320, 352).equals(binding)) throw new AttestationError('the Quoting Enclave\'s report does not vouch for the quote\'s attestation key');
  if (!verify('sha256', quote.signed, { key: p256(quote.attestationKey), dsaEncoding: 'ieee-p1363' }, quote.signature)) {
    throw new AttestationError('the TD report is not signed by the quote\'s attestation key (it was changed)');
  }
}

export interface TdxVerdict {
  name: string;
  values: ReferenceValues;
}

export function verifyTdxEvidence(value: unknown, expectedReportData: Buffer, references: Map<string, ReferenceValues>): TdxVerdict {
  const evidence = (typeof value === 'object' && value !== null ? value : {}) as { quote?: unknown };
  if (typeof evidence.quote !== 'string') throw new AttestationError('the tdx evidence is not {quote} (base64)');
  const quote = parseTdxQuote(Buffer.from(evidence.quote, 'base64'));
  verifyTdxQuote(quote);
  if (quote.tdAttributes[0]! & 1) throw new AttestationError('the TD is a debug TD (TDATTRIBUTES.DEBUG): its memory is the host\'s to read');
  const expected = Buffer.concat([expectedReportData, Buffer.alloc(64 - expectedReportData.length)]);
  if (!quote.reportData.equals(expected)) throw new AttestationError('the TDX quote is not for this session: REPORTDATA is not the hash of this challenge\'s nonce and TEE key (replayed evidence?)');
  const mrTd = quote.mrTd.toString('hex');
  const configId = quote.mrConfigId.subarray(0, 32).toString('hex');
  const candidates = [...references].filter(([, values]) => values.tee === 'tdx');
  if (!candidates.length) throw new AttestationError('the key broker has no reference values for a tdx guest');
  for (const [name, values] of candidates) {
    if (values.launchDigest === mrTd && values.initdata === configId && quote.mrConfigId.subarray(32).every((b) => b === 0)) return { name, values };
  }
  const [name, values] = candidates.find(([, v]) => v.launchDigest === mrTd) ?? candidates[0]!;
  const what = values.launchDigest !== mrTd
    ? `MRTD ${mrTd.slice(0, 16)}… is not the reference value ${values.launchDigest!.slice(0, 16)}…`
    : `MRCONFIGID (the initdata) ${configId.slice(0, 16)}… is not the reference value ${values.initdata.slice(0, 16)}…`;
  throw new AttestationError(`the evidence matches no reference values; against "${name}": ${what}`);
}
