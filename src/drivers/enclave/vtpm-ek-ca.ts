// The maker of this host's vTPMs, as a TPM vendor is of real ones: a CA (an ECDSA P-256 key, root's alone) that
// signs each vTPM's EK certificate, which the key broker trusts (`runbox enclave kbs serve` takes its certificate).
// Made on first use and kept across reboots, so that a broker's trust outlives any one sandbox.
import { createPrivateKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../host/atomic-file.js';
import { withLock } from '../../host/file-lock.js';
import { buildCertificate, KEY_USAGE } from '../../attestation/x509-builder.js';

export const EK_CA_DIR = process.env.RUNBOX_ENCLAVE_EK_CA_DIR ?? '/var/lib/runbox/enclave-ek-ca';
export const EK_CA_CERT = join(EK_CA_DIR, 'ca.pem');
const EK_CA_KEY = join(EK_CA_DIR, 'ca-key.pem');
const TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000;

export interface EkCa {
  key: KeyObject;
  cert: X509Certificate;
}

let loaded: EkCa | undefined;

function read(): EkCa | undefined {
  try {
    return { key: createPrivateKey(readFileSync(EK_CA_KEY)), cert: new X509Certificate(readFileSync(EK_CA_CERT)) };
  } catch {
    return undefined;
  }
}

/** This host's vTPM CA, made (under a lock: concurrent creates make one) if there is none yet. */
export async function ekCa(): Promise<EkCa> {
  if (loaded) return loaded;
  loaded = read() ?? await (async () => {
    mkdirSync(EK_CA_DIR, { recursive: true, mode: 0o700 });
    return withLock(join(EK_CA_DIR, 'lock'), 'ex', async () => {
      const made = read();
      if (made) return made;
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const now = Date.now();
      const subject = 'runbox vTPM EK CA';
      const der = buildCertificate({
        subject, issuer: subject, publicKey, signingKey: privateKey, ca: true, keyUsage: KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign,
        notBefore: new Date(now - 24 * 3600 * 1000), notAfter: new Date(now + TEN_YEARS_MS),
      });
      const cert = new X509Certificate(der);
      writeFileAtomic(EK_CA_KEY, privateKey.export({ type: 'pkcs8', format: 'pem' }), 0o600);
      writeFileAtomic(EK_CA_CERT, cert.toString(), 0o644);
      return { key: privateKey, cert };
    });
  })();
  return loaded;
}

/** The EK certificate of one vTPM, for its EK's public key. */
export function ekCertificate(ca: EkCa, ekPublicKey: KeyObject): Buffer {
  const now = Date.now();
  return buildCertificate({
    subject: 'runbox vTPM EK', issuer: 'runbox vTPM EK CA', publicKey: ekPublicKey, signingKey: ca.key, ca: false,
    keyUsage: KEY_USAGE.keyAgreement, notBefore: new Date(now - 24 * 3600 * 1000), notAfter: new Date(now + TEN_YEARS_MS),
  });
}
