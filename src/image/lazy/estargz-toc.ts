// The table of contents of an eStargz layer (`stargz.index.json`, the layer's last tar entry): its entries as
// upstream writes them, checked before anything is built from them, and where each file's bytes are in the blob.
import { gunzipSync } from 'node:zlib';
import { digestOf } from '../digest.js';
import { TocError } from '../../errors/errors.js';

export const TOC_NAME = 'stargz.index.json';
export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
export const UNCOMPRESSED_SIZE_ANNOTATION = 'io.containers.estargz.uncompressed-size';
export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';
/** runbox's own layer annotation: chunks (file name, chunkOffset) to prefetch besides those before the landmark. */
export const PREFETCH_CHUNKS_ANNOTATION = 'io.runbox.estargz.prefetch-chunks';
/** A TOC larger than this, uncompressed, is refused (upstream's own limit is smaller). */
export const MAX_TOC_BYTES = 128 * 1024 * 1024;

export type TocEntryType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'chunk';
const TYPES = new Set<string>(['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk']);

export interface TocEntry {
  /** Clean, relative, without a trailing slash; '' is the root. */
  name: string;
  type: TocEntryType;
  size: number;
  modtime?: string;
  linkName?: string;
  mode: number;
  uid: number;
  gid: number;
  devMajor: number;
  devMinor: number;
  /** Values as bytes (the TOC has them base64). */
  xattrs?: Record<string, Buffer>;
  /** sha256 of the whole file (reg). */
  digest?: string;
  /** Where the gzip member holding this chunk begins in the blob. */
  offset: number;
  /** Where this chunk begins in its file. */
  chunkOffset: number;
  /** Its length; 0 in the TOC means "to the end of the file". */
  chunkSize: number;
  chunkDigest?: string;
  /** Where the chunk begins in the uncompressed bytes of its gzip member. */
  innerOffset: number;
}

export interface Toc {
  version: number;
  entries: TocEntry[];
}

export { TocError };

function cleanName(raw: unknown): string {
  if (typeof raw !== 'string') throw new TocError('an entry without a name');
  if (raw.includes('\0')) throw new TocError(`entry name with a NUL byte`);
  const parts = raw.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.some((part) => part === '..')) throw new TocError(`entry "${raw.slice(0, 200)}" climbs out of the layer`);
  return parts.join('/');
}

function count(value: unknown, what: string, name: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new TocError(`entry "${name}": ${what} is not a count of bytes`);
  return value;
}

function sha256(value: unknown, what: string, name: string): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(value)) throw new TocError(`entry "${name}": ${what} is not a sha256 digest`);
  return value;
}

/** The TOC's JSON, checked entry by entry: names cannot climb out, numbers are numbers, digests are digests. */
export function parseToc(json: Buffer): Toc {
  let raw: { version?: unknown; entries?: unknown };
  try {
    raw = JSON.parse(json.toString('utf8')) as typeof raw;
  } catch {
    throw new TocError('the TOC is not JSON');
  }
  if (raw.version !== 1) throw new TocError(`TOC version ${String(raw.version)} is not 1`);
  if (!Array.isArray(raw.entries)) throw new TocError('the TOC has no entries');
  const entries = (raw.entries as Record<string, unknown>[]).map((e): TocEntry => {
    const name = cleanName(e.name);
    if (typeof e.type !== 'string' || !TYPES.has(e.type)) throw new TocError(`entry "${name}": unknown type ${String(e.type)}`);
    const entry: TocEntry = {
      name,
      type: e.type as TocEntryType,
      size: count(e.size, 'size', name),
      mode: count(e.mode, 'mode', name) & 0o7777,
      uid: count(e.uid, 'uid', name),
      gid: count(e.gid, 'gid', name),
      devMajor: count(e.devMajor, 'devMajor', name),
      devMinor: count(e.devMinor, 'devMinor', name),
      offset: count(e.offset, 'offset', name),
      chunkOffset: count(e.chunkOffset, 'chunkOffset', name),
      chunkSize: count(e.chunkSize, 'chunkSize', name),
      innerOffset: count(e.innerOffset, 'innerOffset', name),
    };
    if (typeof e.modtime === 'string') entry.modtime = e.modtime;
    if (e.linkName !== undefined) {
      if (typeof e.linkName !== 'string' || e.linkName.includes('\0')) throw new TocError(`entry "${name}": bad linkName`);
      entry.linkName = e.linkName;
    }
    const digest = sha256(e.digest, 'digest', name);
    if (digest) entry.digest = digest;
    const chunkDigest = sha256(e.chunkDigest, 'chunkDigest', name);
    if (chunkDigest) entry.chunkDigest = chunkDigest;
    if (e.xattrs !== undefined && e.xattrs !== null) {
      if (typeof e.xattrs !== 'object') throw new TocError(`entry "${name}": xattrs is not a map`);
      entry.xattrs = {};
      for (const [key, value] of Object.entries(e.xattrs as Record<string, unknown>)) {
        if (typeof value !== 'string') throw new TocError(`entry "${name}": xattr ${key} is not base64`);
        entry.xattrs[key] = Buffer.from(value, 'base64');
      }
    }
    if ((entry.type === 'symlink' || entry.type === 'hardlink') && entry.linkName === undefined) throw new TocError(`entry "${name}": a ${entry.type} without a linkName`);
    if ((entry.type === 'reg' || entry.type === 'chunk') && entry.size > 0 && !entry.chunkDigest) throw new TocError(`entry "${name}": file data without a chunkDigest`);
    return entry;
  });
  return { version: 1, entries };
}

/** Reads a ustar size field: octal, or GNU base-256 when the high bit of its first byte is set. */
function tarSize(field: Buffer): number {
  if (field[0]! & 0x80) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  return Number.parseInt(field.toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
}

/**
 * The TOC's JSON from its gzip member (the blob's bytes from the TOC offset up to the footer), checked against the
 * digest the layer's annotation records before a byte of it is parsed.
 */
export function tocFromMember(member: Buffer, expectedDigest: string): Buffer {
  let tar: Buffer;
  try {
    tar = gunzipSync(member, { maxOutputLength: MAX_TOC_BYTES + 1024 });
  } catch (error) {
    throw new TocError(`the TOC's gzip member does not decompress: ${(error as Error).message}`);
  }
  if (tar.length < 512) throw new TocError('the TOC member holds no tar header');
  const name = tar.toString('latin1', 0, 100).replace(/\0.*$/s, '');
  if (name !== TOC_NAME) throw new TocError(`the entry at the TOC offset is "${name.slice(0, 100)}", not ${TOC_NAME}`);
  const size = tarSize(tar.subarray(124, 136));
  if (!Number.isSafeInteger(size) || size > MAX_TOC_BYTES || 512 + size > tar.length) throw new TocError(`the TOC entry's size ${size} is wrong`);
  const json = tar.subarray(512, 512 + size);
  const actual = digestOf(json);
  if (actual !== expectedDigest) throw new TocError(`TOC digest mismatch: the layer's annotation says ${expectedDigest}, the TOC is ${actual}`);
  return Buffer.from(json);
}
