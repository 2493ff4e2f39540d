// Reference values: what a guest's evidence must show to be trusted, computed on a host from exactly what that host
// boots (`runbox enclave measure BUNDLE` prints them) and registered with the key broker. For a vTPM: every PCR the
// quote must cover, with what each measurement in it was; for SEV-SNP and TDX: the launch digest and the initdata.
import { AttestationError } from '../errors/errors.js';

/** One measurement of a launch: which PCR (or register) took it, its digest, and what it measures, for messages. */
export interface MeasuredEvent {
  pcr: number;
  digest: string;
  what: string;
}

export type TeeType = 'vtpm' | 'snp' | 'tdx';
export const TEE_TYPES: readonly TeeType[] = ['vtpm', 'snp', 'tdx'];

export interface ReferenceValues {
  tee: TeeType;
  /** vtpm: the PCRs (decimal index → hex SHA-256) a quote must cover, each with this value. */
  pcrs?: Record<string, string>;
  /** The measurements behind the PCRs, in the order they were made. */
  events?: MeasuredEvent[];
  /** snp: the launch MEASUREMENT (hex, 48 bytes); tdx: MRTD (hex, 48 bytes). */
  launchDigest?: string;
  /** The initdata digest (hex SHA-256): vtpm's PCR 8 holds it, snp's HOST_DATA and tdx's MRCONFIGID are it. */
  initdata: string;
  /** The key broker's resources (repository/type/tag) this guest asks for, released only to a guest that matches. */
  resources: string[];
}

const HEX_DIGEST = /^[0-9a-f]{64}$/;
const HEX_384 = /^[0-9a-f]{96}$/;
/** A key broker resource path as trustee names them: repository/type/tag. */
export const RESOURCE_PATH = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;

function fail(what: string): never {
  throw new AttestationError(`reference values: ${what}`);
}

/** Checks a parsed document (the key broker's input) and returns it typed; what is wrong is named. */
export function parseReferenceValues(value: unknown): ReferenceValues {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('not a JSON object');
  const doc = value as Record<string, unknown>;
  if (!TEE_TYPES.includes(doc.tee as TeeType)) fail(`tee is ${JSON.stringify(doc.tee)}, expected one of ${TEE_TYPES.join(', ')}`);
  if (typeof doc.initdata !== 'string' || !HEX_DIGEST.test(doc.initdata)) fail('initdata is not a hex SHA-256 digest');
  if (!Array.isArray(doc.resources) || doc.resources.some((r) => typeof r !== 'string' || !RESOURCE_PATH.test(r))) {
    fail('resources is not a list of repository/type/tag paths');
  }
  const tee = doc.tee as TeeType;
  if (tee === 'vtpm') {
    if (typeof doc.pcrs !== 'object' || doc.pcrs === null || Array.isArray(doc.pcrs) || Object.keys(doc.pcrs).length === 0) fail('pcrs is not an object of PCR values');
    for (const [index, digest] of Object.entries(doc.pcrs as Record<string, unknown>)) {
      if (!/^(?:[0-9]|1[0-9]|2[0-3])$/.test(index)) fail(`pcrs has "${index}", not a PCR index (0 to 23)`);
      if (typeof digest !== 'string' || !HEX_DIGEST.test(digest)) fail(`PCR ${index} is not a hex SHA-256 value`);
    }
  } else if (typeof doc.launchDigest !== 'string' || !HEX_384.test(doc.launchDigest)) {
    fail(`launchDigest is not a hex 48-byte digest (${tee})`);
  }
  if (doc.events !== undefined && (!Array.isArray(doc.events) || doc.events.some((e) => typeof e !== 'object' || e === null
    || typeof (e as MeasuredEvent).pcr !== 'number' || typeof (e as MeasuredEvent).digest !== 'string' || typeof (e as MeasuredEvent).what !== 'string'))) {
    fail('events is not a list of {pcr, digest, what}');
  }
  return doc as unknown as ReferenceValues;
}

/** What a PCR measures, from the events behind it ("PCR 9 (initrd /path)"). */
export function describePcr(values: ReferenceValues, index: number): string {
  const whats = (values.events ?? []).filter((event) => event.pcr === index).map((event) => event.what);
  return whats.length ? `PCR ${index} (${whats.join(', ')})` : `PCR ${index}`;
}
