// The key broker's parts that need no TPM: JWE to a TEE key, the Request checks (the EK certificate's chain, the
// attestation key's attributes), reference values, the runtime data's hash. (With real TPMs: enclave-attestation.)
import test from 'ava';
import { createECDH, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { decryptFromTee, encryptToTee, type TeePublicKey } from '../../src/attestation/jwe.js';
import { KeyBroker } from '../../src/attestation/key-broker.js';
import { canonicalJson, reportData } from '../../src/attestation/kbs-protocol.js';
import { parseReferenceValues } from '../../src/attestation/reference-values.js';
import { TPM_ALG } from '../../src/attestation/tpm2-constants.js';
import { AK_ATTRIBUTES, sizedPublic, type EccPublic } from '../../src/attestation/tpm2-public.js';
import { buildCertificate, KEY_USAGE } from '../../src/attestation/x509-builder.js';

function teeKey(): { ecdh: ReturnType<typeof createECDH>; jwk: TeePublicKey } {
  const ecdh = createECDH('prime256v1');
  const point = ecdh.generateKeys();
  return { ecdh, jwk: { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') } };
}

test('a resource is encrypted to the TEE key: only its holder opens it, and a changed byte is refused', (t) => {
  const tee = teeKey();
  const jwe = encryptToTee(Buffer.from('the secret'), tee.jwk);
  t.deepEqual(JSON.parse(Buffer.from(jwe.protected, 'base64url').toString()).alg, 'ECDH-ES+A256KW');
  t.is(decryptFromTee(jwe, tee.ecdh).toString(), 'the secret');
  t.throws(() => decryptFromTee(jwe, teeKey().ecdh), undefined, 'another key cannot unwrap it');
  const flipped = Buffer.from(jwe.ciphertext, 'base64url');
  flipped[0]! ^= 1;
  t.throws(() => decryptFromTee({ ...jwe, ciphertext: flipped.toString('base64url') }, tee.ecdh), undefined, 'GCM refuses a changed ciphertext');
});

function ca(subject: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = Date.now();
  const cert = new X509Certificate(buildCertificate({
    subject, issuer: subject, publicKey, signingKey: privateKey, ca: true, keyUsage: KEY_USAGE.keyCertSign,
    notBefore: new Date(now - 1000), notAfter: new Date(now + 3600_000),
  }));
  const issue = (ekPublic = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey) => buildCertificate({
    subject: 'an EK', issuer: subject, publicKey: ekPublic, signingKey: privateKey, ca: false, keyUsage: KEY_USAGE.keyAgreement,
    notBefore: new Date(now - 1000), notAfter: new Date(now + 3600_000),
  });
  return { cert, issue };
}

function ak(attributes = AK_ATTRIBUTES): EccPublic {
  return { nameAlg: TPM_ALG.SHA256, attributes, authPolicy: Buffer.alloc(0), scheme: { algorithm: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256 }, curve: 3, x: Buffer.alloc(32, 1), y: Buffer.alloc(32, 2) };
}

function request(ekCert: Buffer, key: EccPublic) {
  return { version: '0.1.0', tee: 'tpm', 'extra-params': { ek_cert: ekCert.toString('base64'), ak_public: sizedPublic(key).toString('base64') } };
}

test('a Request is refused unless its EK certificate chains to a trusted TPM maker and its AK is a restricted signing key', (t) => {
  const trusted = ca('trusted vTPM maker');
  const other = ca('someone else');
  const lines: string[] = [];
  const broker = new KeyBroker({ trustedCas: [trusted.cert], log: (line) => lines.push(line) });
  const { challenge } = broker.auth(request(trusted.issue(), ak()));
  t.is(Buffer.from(challenge.nonce, 'base64').length, 32);
  t.truthy((challenge['extra-params'] as { id_object: string }).id_object, 'a credential for the AK comes with the nonce');
  t.throws(() => broker.auth(request(other.issue(), ak())), { message: /the EK certificate \(issued by "CN=someone else"\) does not chain to a trusted TPM maker's CA/ });
  t.throws(() => broker.auth(request(trusted.issue(), ak(AK_ATTRIBUTES & ~(1 << 16)))), { message: /the attestation key is not a restricted ECDSA signing key/ });
  t.throws(() => broker.auth({ ...request(trusted.issue(), ak()), version: '9.9.9' }), { message: /KBS protocol version "9\.9\.9": this key broker speaks 0\.1\.0/ });
  t.throws(() => broker.attest('no-such-session', {}), { message: /no such session/ });
});

test('reference values are refused with what is wrong named; the runtime data is hashed with its keys in order', (t) => {
  const pcr = 'ab'.repeat(32);
  t.notThrows(() => parseReferenceValues({ tee: 'vtpm', pcrs: { 4: pcr }, initdata: pcr, resources: ['default/key/db'] }));
  t.throws(() => parseReferenceValues({ tee: 'sgx', initdata: pcr, resources: [] }), { message: /tee is "sgx", expected one of vtpm, snp, tdx/ });
  t.throws(() => parseReferenceValues({ tee: 'vtpm', pcrs: { 24: pcr }, initdata: pcr, resources: [] }), { message: /pcrs has "24", not a PCR index/ });
  t.throws(() => parseReferenceValues({ tee: 'vtpm', pcrs: { 4: pcr }, initdata: pcr, resources: ['db'] }), { message: /resources is not a list of repository\/type\/tag paths/ });
  t.is(canonicalJson({ b: 1, a: { d: [1, { z: 0, y: 1 }], c: 'x' } }), '{"a":{"c":"x","d":[1,{"y":1,"z":0}]},"b":1}');
  const jwk = teeKey().jwk;
  t.deepEqual(reportData({ 'tee-pubkey': jwk, nonce: 'n' }), reportData({ nonce: 'n', 'tee-pubkey': { y: jwk.y, x: jwk.x, kty: 'EC', crv: 'P-256', alg: jwk.alg } }));
});
