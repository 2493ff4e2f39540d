// runbox's key broker: trustee's KBS, RCAR and resources, over whatever carries its HTTP (kbs-http.ts), for TPM,
// SEV-SNP and TDX evidence (tpm-evidence.ts, snp-evidence.ts, tdx-evidence.ts). It holds
// the resources (secrets, in memory only: none is ever written to disk) and the reference values (by name, each
// with the resources a guest that matches them may have); a session is a nonce used once, and resources go only
// to an attested session, encrypted to its TEE key, when its reference values list them. Its log names sessions,
// reference values and resource paths, never a resource's content.
import { generateKeyPairSync, randomBytes, sign, type X509Certificate } from 'node:crypto';
import { AttestationError, KbsError } from '../errors/errors.js';
import { encryptToTee, type JweResponse, type TeePublicKey } from './jwe.js';
import { parseAttestation, parseRequest, reportData, type KbsChallenge, type KbsTee } from './kbs-protocol.js';
import { RESOURCE_PATH, type ReferenceValues } from './reference-values.js';
import { verifySnpEvidence } from './snp-evidence.js';
import { verifyTdxEvidence } from './tdx-evidence.js';
import { credentialSecret, tpmChallenge, tpmIdentity, verifyTpmEvidence, type TpmIdentity } from './tpm-evidence.js';

/** How long a session lasts from its Request: trustee's default. */
const SESSION_SECONDS = 300;

interface Session {
  id: string;
  expires: number;
  tee: KbsTee;
  nonce: string;
  tpm?: { identity: TpmIdentity; secret: Buffer };
  attested?: { name: string; teeKey: TeePublicKey; resources: string[]; token: string };
}

export interface KeyBrokerOptions {
  /** The CAs of the TPM makers whose EK certificates are trusted (this host's vTPM CA). */
  trustedCas: X509Certificate[];
  log: (line: string) => void;
}

export class KeyBroker {
  private readonly resources = new Map<string, Buffer>();
  private readonly references = new Map<string, ReferenceValues>();
  private readonly sessions = new Map<string, Session>();
  private readonly tokenKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

  constructor(private readonly options: KeyBrokerOptions) {}

  setResource(path: string, value: Buffer): void {
    if (!RESOURCE_PATH.test(path)) throw new KbsError(`"${path}" is not a resource path (repository/type/tag)`, 400);
    this.resources.set(path, value);
    this.options.log(`resource ${path} set (${value.length} bytes)`);
  }

  setReferenceValues(name: string, values: ReferenceValues): void {
    this.references.set(name, values);
    this.options.log(`reference values "${name}" set (${values.tee}, releasing ${values.resources.join(', ') || 'nothing'})`);
  }

  /** RCAR's Request: a Challenge for a new session. */
  auth(body: unknown): { session: string; challenge: KbsChallenge } {
    const request = parseRequest(body);
    this.expire();
    const id = randomBytes(16).toString('hex');
    const session: Session = { id, expires: Date.now() + SESSION_SECONDS * 1000, tee: request.tee, nonce: randomBytes(32).toString('base64') };
    let extra: unknown = '';
    if (request.tee === 'tpm') {
      let identity: TpmIdentity;
      try {
        identity = tpmIdentity(request['extra-params'], this.options.trustedCas);
      } catch (error) {
        this.options.log(`session ${id}: Request refused: ${(error as Error).message}`);
        throw new KbsError((error as Error).message, 401);
      }
      const secret = credentialSecret();
      session.tpm = { identity, secret };
      extra = tpmChallenge(identity, secret);
      this.options.log(`session ${id}: tpm Request, EK certified by "${identity.ekIssuer.replace(/\n/g, ', ')}"`);
    } else {
      this.options.log(`session ${id}: ${request.tee} Request`);
    }
    this.sessions.set(id, session);
    return { session: id, challenge: { nonce: session.nonce, 'extra-params': extra } };
  }

  /** RCAR's Attestation: a token for a session whose evidence passes; a session whose evidence fails is ended. */
  attest(sessionId: string | undefined, body: unknown): { token: string } {
    const session = this.session(sessionId);
    if (session.attested) return { token: session.attested.token };
    try {
      const attestation = parseAttestation(body);
      const runtime = attestation['runtime-data'];
      if (runtime.nonce !== session.nonce) throw new AttestationError('the runtime data\'s nonce is not this session\'s challenge (replayed evidence?)');
      const evidence = attestation['tee-evidence'];
      const verdict = session.tee === 'tpm'
        ? verifyTpmEvidence(evidence, session.tpm!.identity, session.tpm!.secret, reportData(runtime), this.references)
        : session.tee === 'snp'
          ? verifySnpEvidence(evidence, reportData(runtime), this.references)
          : verifyTdxEvidence(evidence, reportData(runtime), this.references);
      const token = this.token({ tee: session.tee, 'reference-values': verdict.name, exp: Math.floor(session.expires / 1000) });
      session.attested = { name: verdict.name, teeKey: runtime['tee-pubkey'], resources: verdict.values.resources, token };
      this.options.log(`session ${session.id}: attested: matches reference values "${verdict.name}"`);
      return { token };
    } catch (error) {
      this.sessions.delete(session.id);
      this.options.log(`session ${session.id}: attestation refused: ${(error as Error).message}`);
      throw new KbsError((error as Error).message, 401);
    }
  }

  /** A resource for an attested session whose reference values release it, encrypted to the session's TEE key. */
  resource(sessionId: string | undefined, path: string): JweResponse {
    const session = this.session(sessionId);
    if (!session.attested) throw new KbsError('the session has not attested', 401);
    if (!session.attested.resources.includes(path)) {
      this.options.log(`session ${session.id}: ${path} refused: not released to reference values "${session.attested.name}"`);
      throw new KbsError(`the reference values "${session.attested.name}" do not release ${path}`, 403);
    }
    const value = this.resources.get(path);
    if (!value) throw new KbsError(`no resource ${path}`, 404);
    this.options.log(`session ${session.id}: ${path} released`);
    return encryptToTee(value, session.attested.teeKey);
  }

  private session(id: string | undefined): Session {
    this.expire();
    const session = id ? this.sessions.get(id) : undefined;
    if (!session) throw new KbsError('no such session (it expired, failed, or never was: start with a Request)', 401);
    return session;
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, session] of this.sessions) if (session.expires < now) this.sessions.delete(id);
  }

  /** An ES256 JWT of the claims, signed by this broker. */
  private token(claims: Record<string, unknown>): string {
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signed = `${part({ alg: 'ES256', typ: 'JWT' })}.${part({ iss: 'runbox-kbs', iat: Math.floor(Date.now() / 1000), ...claims })}`;
    return `${signed}.${sign('sha256', Buffer.from(signed), { key: this.tokenKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  }
}
