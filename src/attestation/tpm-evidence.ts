// The verifier of TPM evidence (KBS tee `tpm`; runbox's vTPM): at Request, the EK certificate must chain to a
// trusted TPM maker and the attestation key must be a restricted signing key; the Challenge carries a credential
// made to the EK for that key; the evidence must hold the secret of the credential (the key is in the EK's TPM), a
// quote signed by that key whose qualifying data is the hash of this session's runtime data (so a quote for another
// nonce or another TEE key is refused), PCR values that hash to the quoted digest, and every PCR of a set of
// reference values. Each refusal names the check that failed, and for PCRs, what each measures.
import { createPublicKey, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { AttestationError, TpmError } from '../errors/errors.js';
import { sha256 } from './pcr-bank.js';
import { describePcr, type ReferenceValues } from './reference-values.js';
import { TPM_ALG } from './tpm2-constants.js';
import { makeCredential, type Credential } from './tpm2-credential.js';
import { parseQuote, quoteSignedBy } from './tpm2-quote.js';
import { AK_ATTRIBUTES, ekTemplate, objectName, pointOf, publicKeyOf, readSizedPublic, type EccPublic } from './tpm2-public.js';

/** What the guest tells about its TPM at Request: its EK certificate and its attestation key. */
export interface TpmIdentity {
  ek: EccPublic;
  ak: EccPublic;
  akName: Buffer;
  ekIssuer: string;
}

/** A Request's extra-params for `tpm`: `ek_cert` (DER) and `ak_public` (TPM2B_PUBLIC), base64. */
export function tpmIdentity(extra: unknown, trustedCas: X509Certificate[], now = new Date()): TpmIdentity {
  const params = (typeof extra === 'object' && extra !== null ? extra : {}) as Record<string, unknown>;
  if (typeof params.ek_cert !== 'string' || typeof params.ak_public !== 'string') {
    throw new AttestationError('a tpm Request carries ek_cert and ak_public (base64) in its extra-params');
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(params.ek_cert, 'base64'));
  } catch {
    throw new AttestationError('the EK certificate cannot be read (DER X.509 expected)');
  }
  const issuer = trustedCas.find((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
  if (!issuer) throw new AttestationError(`the EK certificate (issued by "${cert.issuer.replace(/\n/g, ', ')}") does not chain to a trusted TPM maker's CA`);
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) throw new AttestationError(`the EK certificate is not valid now (${cert.validFrom} to ${cert.validTo})`);
  let ek: EccPublic;
  let ak: EccPublic;
  try {
    ek = { ...ekTemplate(), ...pointOf(cert.publicKey) };
    ak = readSizedPublic(Buffer.from(params.ak_public, 'base64'));
  } catch (error) {
    throw new AttestationError(`the TPM's keys: ${(error as Error).message}`);
  }
  if ((ak.attributes & AK_ATTRIBUTES) !== AK_ATTRIBUTES || ak.nameAlg !== TPM_ALG.SHA256 || ak.scheme?.algorithm !== TPM_ALG.ECDSA) {
    throw new AttestationError('the attestation key is not a restricted ECDSA signing key that never leaves its TPM');
  }
  return { ek, ak, akName: objectName(ak), ekIssuer: issuer.subject };
}

/** The Challenge's extra-params for `tpm`: a credential holding `secret`, for the AK, that only the EK's TPM opens. */
export function tpmChallenge(identity: TpmIdentity, secret: Buffer): { id_object: string; encrypted_secret: string } {
  const credential: Credential = makeCredential(identity.ek, identity.akName, secret);
  return { id_object: credential.idObject.toString('base64'), encrypted_secret: credential.encryptedSecret.toString('base64') };
}

export function credentialSecret(): Buffer {
  return randomBytes(32);
}

/** The evidence of one guest: `credential` (the opened secret), `ak_public` (DER SPKI) and `tpm_quote`, base64. */
interface TpmEvidence {
  credential: string;
  ak_public: string;
  tpm_quote: { message: string; signature: string; pcrs: string[] };
}

function readEvidence(value: unknown): TpmEvidence {
  const evidence = (typeof value === 'object' && value !== null ? value : {}) as Partial<TpmEvidence>;
  const quote = evidence.tpm_quote;
  if (typeof evidence.credential !== 'string' || typeof evidence.ak_public !== 'string' || typeof quote !== 'object' || quote === null
    || typeof quote.message !== 'string' || typeof quote.signature !== 'string' || !Array.isArray(quote.pcrs)
    || quote.pcrs.some((pcr) => typeof pcr !== 'string' || !/^[0-9a-f]{64}$/.test(pcr))) {
    throw new AttestationError('the tpm evidence is not {credential, ak_public, tpm_quote: {message, signature, pcrs (hex)}}');
  }
  return evidence as TpmEvidence;
}

/** The PCRs of the quote that differ from one set of reference values, in words; empty when it matches. */
function differences(values: ReferenceValues, quoted: Map<number, string>): string[] {
  const found: string[] = [];
  for (const [index, expected] of Object.entries(values.pcrs ?? {})) {
    const actual = quoted.get(Number(index));
    if (actual === undefined) found.push(`${describePcr(values, Number(index))} was not quoted`);
    else if (actual !== expected) found.push(`${describePcr(values, Number(index))} is ${actual.slice(0, 16)}…, the reference value ${expected.slice(0, 16)}…`);
  }
  return found;
}

export interface TpmVerdict {
  /** The name of the reference values the evidence matched. */
  name: string;
  values: ReferenceValues;
  pcrs: Record<string, string>;
}

/** Verifies one guest's evidence for a session; throws an AttestationError that says which check failed. */
export function verifyTpmEvidence(
  value: unknown, identity: TpmIdentity, secret: Buffer, expectedReportData: Buffer, references: Map<string, ReferenceValues>,
): TpmVerdict {
  const evidence = readEvidence(value);
  const opened = Buffer.from(evidence.credential, 'base64');
  if (opened.length !== secret.length || !timingSafeEqual(opened, secret)) {
    throw new AttestationError('the credential this session made to the EK for the attestation key was not opened: the key is not in the EK\'s TPM, or the evidence is another session\'s');
  }
  const akKey = publicKeyOf(identity.ak);
  let claimedAk;
  try {
    claimedAk = createPublicKey({ key: Buffer.from(evidence.ak_public, 'base64'), format: 'der', type: 'spki' });
  } catch {
    throw new AttestationError('ak_public is not a DER public key');
  }
  if (!claimedAk.equals(akKey)) throw new AttestationError('the evidence names another attestation key than the one the credential was made for');
  const message = Buffer.from(evidence.tpm_quote.message, 'base64');
  let quote;
  let signed: boolean;
  try {
    quote = parseQuote(message);
    signed = quoteSignedBy(message, Buffer.from(evidence.tpm_quote.signature, 'base64'), akKey);
  } catch (error) {
    throw new AttestationError(`the quote: ${(error as TpmError).message}`);
  }
  if (!signed) throw new AttestationError('the quote is not signed by the attestation key (a key that does not chain to the TPM\'s EK)');
  if (!quote.extraData.equals(expectedReportData)) {
    throw new AttestationError('the quote is not for this session: its qualifying data is not the hash of this challenge\'s nonce and TEE key (replayed evidence?)');
  }
  if (evidence.tpm_quote.pcrs.length !== quote.pcrs.length) {
    throw new AttestationError(`the evidence has ${evidence.tpm_quote.pcrs.length} PCR values for the ${quote.pcrs.length} PCRs quoted`);
  }
  if (!sha256(...evidence.tpm_quote.pcrs.map((pcr) => Buffer.from(pcr, 'hex'))).equals(quote.pcrDigest)) {
    throw new AttestationError('the PCR values in the evidence are not the ones the TPM quoted');
  }
  const quoted = new Map(quote.pcrs.map((index, i) => [index, evidence.tpm_quote.pcrs[i]!]));
  const candidates = [...references].filter(([, values]) => values.tee === 'vtpm');
  if (!candidates.length) throw new AttestationError('the key broker has no reference values for a vtpm guest');
  let closest: { name: string; found: string[] } | undefined;
  for (const [name, values] of candidates) {
    const found = differences(values, quoted);
    if (!found.length) return { name, values, pcrs: Object.fromEntries([...quoted].map(([i, v]) => [String(i), v])) };
    if (!closest || found.length < closest.found.length) closest = { name, found };
  }
  throw new AttestationError(`the evidence matches no reference values; against "${closest!.name}": ${closest!.found.join('; ')}`);
}
