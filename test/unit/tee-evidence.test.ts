// SEV-SNP and TDX evidence against real reports and quotes: trustee's test vectors (test/vectors/README.md). The
// signatures and chains verify as they are; one changed byte, or reference values that differ, are refused by name.
import test from 'ava';
import { readFileSync } from 'node:fs';
import type { ReferenceValues } from '../../src/attestation/reference-values.js';
import { parseSnpReport, verifySnpEvidence, verifySnpReport } from '../../src/attestation/snp-evidence.js';
import { parseTdxQuote, verifyTdxEvidence, verifyTdxQuote } from '../../src/attestation/tdx-evidence.js';

const vector = (name: string) => readFileSync(new URL(`../../../test/vectors/${name}`, import.meta.url));

test('an SNP report: its VCEK chains to AMD\'s Milan ARK, its signature and TCB are the VCEK\'s; a changed byte is refused', (t) => {
  const raw = vector('trustee-snp-report.bin');
  const vcek = vector('trustee-snp-vcek.der');
  const report = parseSnpReport(raw);
  t.is(report.measurement.toString('hex'), 'a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c');
  t.deepEqual(report.reportedTcb, { bootloader: 3, tee: 0, snp: 8, microcode: 115 });
  t.is(verifySnpReport(report, vcek), 'Milan');
  const changed = Buffer.from(raw);
  changed[0x90] ^= 1; // the measurement
  t.throws(() => verifySnpReport(parseSnpReport(changed), vcek), { message: /the SNP report is not signed by the VCEK/ });

  // The whole evidence: reference values of this measurement and host data (zero) match; another measurement is named.
  const evidence = { attestation_report: raw.toString('base64'), cert_chain: [{ cert_type: 'vcek', data: vcek.toString('base64') }] };
  const values = (launchDigest: string): ReferenceValues => ({ tee: 'snp', launchDigest, initdata: report.hostData.toString('hex'), resources: [] });
  const good = new Map([['snp-guest', values(report.measurement.toString('hex'))]]);
  t.is(verifySnpEvidence(evidence, report.reportData, good).name, 'snp-guest');
  t.throws(() => verifySnpEvidence(evidence, Buffer.alloc(32), good), { message: /REPORT_DATA is not the hash of this challenge's nonce and TEE key/ });
  const other = new Map([['other', values('ab'.repeat(48))]]);
  t.throws(() => verifySnpEvidence(evidence, report.reportData, other), { message: /against "other": the launch MEASUREMENT a1f3930413247bb3… is not the reference value abababababababab…/ });
});

test('a TDX quote: its PCK chain ends at Intel\'s SGX Root CA, the QE vouches for its key, its TD report is signed; a changed byte is refused', (t) => {
  const raw = vector('trustee-tdx-quote-v4.dat');
  const quote = parseTdxQuote(raw);
  // trustee's parse_tdx_claims_expected.json for this quote
  t.is(quote.mrTd.toString('hex'), '705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b689cac1599ccea1b7d420483a9ce5f031');
  t.is(quote.rtmrs[0]!.toString('hex'), 'e940da7c2712d2790e2961e00484f4fa8e6f9eed71361655ae22699476b14f9e63867eb41edd4b480fef0c59f496b288');
  t.is(quote.reportData.toString('hex'), '7c71fe2c86eff65a7cf8dbc22b3275689fd0464a267baced1bf94fc1324656aeb755da3d44d098c0c87382f3a5f85b45c8a28fee1d3bdb38342bf96671501429');
  t.notThrows(() => verifyTdxQuote(quote));
  const changed = Buffer.from(raw);
  changed[48 + 136] ^= 1; // MRTD
  t.throws(() => verifyTdxQuote(parseTdxQuote(changed)), { message: /the TD report is not signed by the quote's attestation key/ });

  const evidence = { quote: raw.toString('base64') };
  const values = (launchDigest: string): ReferenceValues => ({ tee: 'tdx', launchDigest, initdata: '00'.repeat(32), resources: [] });
  // This quote's TD is a debug TD (TDATTRIBUTES 01…): refused before its measurements are looked at.
  t.throws(() => verifyTdxEvidence(evidence, quote.reportData, new Map([['tdx-guest', values(quote.mrTd.toString('hex'))]])), { message: /the TD is a debug TD/ });
});
