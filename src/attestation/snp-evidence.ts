// The verifier of AMD SEV-SNP evidence (KBS tee `snp`), as trustee's: the attestation report (SNP firmware ABI,
// ATTESTATION_REPORT) is signed (ECDSA P-384) by the chip's VCEK (or the platform's VLEK), which must chain to
// AMD's ASK (ASVK) and ARK for its processor generation (pinned: amd-sev-roots.ts); the TCB levels the report
// claims must be the key's; VMPL 0; REPORT_DATA the hash of this session's runtime data; HOST_DATA the initdata
// digest and MEASUREMENT the launch digest of a set of reference values. The guest sends the report and the
// certificate chain its host gave it (runbox's broker fetches nothing from AMD: without the chain it refuses).
import { verify, X509Certificate } from 'node:crypto';
import { AttestationError } from '../errors/errors.js';
import { AMD_CERT_CHAINS } from './amd-sev-roots.js';
import { certificateExtensions, derInteger } from './der-reader.js';
import type { ReferenceValues } from './reference-values.js';

export const SNP_REPORT_BYTES = 0x4a0;
const SIGNED_BYTES = 0x2a0;

export interface SnpTcb {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  fmc?: number;
}

export interface SnpReport {
  version: number;
  guestSvn: number;
  policy: bigint;
  vmpl: number;
  reportData: Buffer;
  measurement: Buffer;
  hostData: Buffer;
  reportedTcb: SnpTcb;
  chipId: Buffer;
  /** CPUID family and model (reports of version 3 and later), which name the processor generation. */
  family?: number;
  model?: number;
  raw: Buffer;
}

type Generation = keyof typeof AMD_CERT_CHAINS;

function generationOf(report: SnpReport): Generation | undefined {
  if (report.family === 0x19) return report.model! < 0x10 ? 'Milan' : 'Genoa';
  if (report.family === 0x1a) return 'Turin';
  return undefined;
}

export function parseSnpReport(raw: Buffer): SnpReport {
  if (raw.length !== SNP_REPORT_BYTES) throw new AttestationError(`an SNP attestation report of ${raw.length} bytes (${SNP_REPORT_BYTES} expected)`);
  const version = raw.readUInt32LE(0);
  if (version < 2 || version > 5) throw new AttestationError(`SNP attestation report version ${version}: versions 2 to 5 are read`);
  if (raw.readUInt32LE(0x34) !== 1) throw new AttestationError('the SNP report is not signed with ECDSA P-384 SHA-384');
  const family = version >= 3 ? raw[0x188]! : undefined;
  const tcb = raw.subarray(0x180, 0x188);
  const turin = family === 0x1a;
  return {
    version,
    guestSvn: raw.readUInt32LE(0x04),
    policy: raw.readBigUInt64LE(0x08),
    vmpl: raw.readUInt32LE(0x30),
    reportData: raw.subarray(0x50, 0x90),
    measurement: raw.subarray(0x90, 0xc0),
    hostData: raw.subarray(0xc0, 0xe0),
    reportedTcb: turin
      ? { fmc: tcb[0]!, bootloader: tcb[1]!, tee: tcb[2]!, snp: tcb[3]!, microcode: tcb[7]! }
      : { bootloader: tcb[0]!, tee: tcb[1]!, snp: tcb[6]!, microcode: tcb[7]! },
    chipId: raw.subarray(0x1a0, 0x1e0),
    ...(family !== undefined && { family, model: raw[0x189]! }),
    raw,
  };
}

const OID = { bootloader: '1.3.6.1.4.1.3704.1.3.1', tee: '1.3.6.1.4.1.3704.1.3.2', snp: '1.3.6.1.4.1.3704.1.3.3', microcode: '1.3.6.1.4.1.3704.1.3.8', hwid: '1.3.6.1.4.1.3704.1.4' };

/** The report's signature is the key's: r and s are little-endian, 72 bytes each, of which 48 are used. */
function signedBy(report: SnpReport, key: X509Certificate): boolean {
  const part = (offset: number) => Buffer.from(report.raw.subarray(offset, offset + 48)).reverse();
  return verify('sha384', report.raw.subarray(0, SIGNED_BYTES), { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.concat([part(0x2a0), part(0x2e8)]));
}

/**
 * Checks the endorsement key (its chain to AMD's roots), the report's signature by it and the TCB it claims; returns
 * the generation. What fails is named.
 */
export function verifySnpReport(report: SnpReport, vekDer: Buffer): Generation {
  let vek: X509Certificate;
  try {
    vek = new X509Certificate(vekDer);
  } catch {
    throw new AttestationError('the SNP endorsement key certificate cannot be read');
  }
  const vlek = /CN=VLEK/.test(vek.subject);
  const named = generationOf(report);
  const generation = (named ? [named] : (Object.keys(AMD_CERT_CHAINS) as Generation[])).find((g) => {
    const chain = AMD_CERT_CHAINS[g];
    const ark = new X509Certificate(chain.ark);
    const ask = new X509Certificate(vlek ? chain.asvk : chain.ask);
    return ark.verify(ark.publicKey) && ask.verify(ark.publicKey) && vek.verify(ask.publicKey);
  });
  if (!generation) throw new AttestationError(`the SNP ${vlek ? 'VLEK' : 'VCEK'} does not chain to AMD's ${named ?? 'Milan, Genoa or Turin'} ARK`);
  if (!signedBy(report, vek)) throw new AttestationError(`the SNP report is not signed by the ${vlek ? 'VLEK' : 'VCEK'} (it was changed, or is another chip's)`);
  const extensions = certificateExtensions(vek.raw);
  for (const field of ['bootloader', 'tee', 'snp', 'microcode'] as const) {
    const value = extensions.get(OID[field]);
    if (value === undefined || derInteger(value) !== report.reportedTcb[field]) {
      throw new AttestationError(`the SNP report's ${field} TCB level ${report.reportedTcb[field]} is not the endorsement key's`);
    }
  }
  if (!vlek) {
    const hwid = extensions.get(OID.hwid);
    const id = hwid?.length === 64 ? hwid : hwid?.subarray(hwid.length - 64);
    if (!id || !id.equals(report.chipId)) throw new AttestationError('the SNP report\'s chip id is not the VCEK\'s');
  }
  return generation;
}

/** The evidence a guest sends: the report and the chain its host gave it (base64 DER), trustee's cert types. */
interface SnpEvidenceJson {
  attestation_report: string;
  cert_chain: Array<{ cert_type: string; data: string }>;
}

export interface SnpVerdict {
  name: string;
  values: ReferenceValues;
  generation: Generation;
}

export function verifySnpEvidence(value: unknown, expectedReportData: Buffer, references: Map<string, ReferenceValues>): SnpVerdict {
  const evidence = (typeof value === 'object' && value !== null ? value : {}) as Partial<SnpEvidenceJson>;
  if (typeof evidence.attestation_report !== 'string' || !Array.isArray(evidence.cert_chain)) {
    throw new AttestationError('the snp evidence is not {attestation_report, cert_chain}');
  }
  const report = parseSnpReport(Buffer.from(evidence.attestation_report, 'base64'));
  const vek = evidence.cert_chain.find((cert) => /^v[cl]ek$/i.test(cert.cert_type));
  if (!vek) throw new AttestationError('the snp evidence has no VCEK or VLEK in its cert_chain (this key broker does not fetch it from AMD)');
  const generation = verifySnpReport(report, Buffer.from(vek.data, 'base64'));
  if (report.vmpl !== 0) throw new AttestationError(`the SNP report is from VMPL ${report.vmpl}, not 0`);
  const expected = Buffer.concat([expectedReportData, Buffer.alloc(64 - expectedReportData.length)]);
  if (!report.reportData.equals(expected)) throw new AttestationError('the SNP report is not for this session: REPORT_DATA is not the hash of this challenge\'s nonce and TEE key (replayed evidence?)');
  const measurement = report.measurement.toString('hex');
  const hostData = report.hostData.toString('hex');
  const candidates = [...references].filter(([, values]) => values.tee === 'snp');
  if (!candidates.length) throw new AttestationError('the key broker has no reference values for an snp guest');
  for (const [name, values] of candidates) {
    if (values.launchDigest === measurement && values.initdata === hostData) return { name, values, generation };
  }
  const [name, values] = candidates.find(([, v]) => v.launchDigest === measurement) ?? candidates[0]!;
  const what = values.launchDigest !== measurement
    ? `the launch MEASUREMENT ${measurement.slice(0, 16)}… is not the reference value ${values.launchDigest!.slice(0, 16)}…`
    : `HOST_DATA (the initdata) ${hostData.slice(0, 16)}… is not the reference value ${values.initdata.slice(0, 16)}…`;
  throw new AttestationError(`the evidence matches no reference values; against "${name}": ${what}`);
}
