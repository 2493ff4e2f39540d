// The FUSE kernel protocol (linux/fuse.h), the part a read-only filesystem needs: request opcodes, the request
// header, and the reply structures, encoded little-endian as the kernel lays them out.

export const FUSE_KERNEL_VERSION = 7;
/** The protocol minor runbox speaks (the kernel adapts to an older one). */
export const FUSE_KERNEL_MINOR = 31;
export const FUSE_ROOT_ID = 1n;

export const Opcode = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  READLINK: 5,
  OPEN: 14,
  READ: 15,
  STATFS: 17,
  RELEASE: 18,
  GETXATTR: 22,
  LISTXATTR: 23,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  ACCESS: 34,
  INTERRUPT: 36,
  DESTROY: 38,
  BATCH_FORGET: 42,
} as const;

/** Requests the kernel expects no reply to. */
export const NO_REPLY = new Set<number>([Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT]);

/** Asks the kernel to queue again the requests a previous server read and never answered (Linux 6.9+). */
export const FUSE_NOTIFY_RESEND = 7;

export const InitFlags = {
  ASYNC_READ: 1 << 0,
  MAX_PAGES: 1 << 22,
} as const;

/** FOPEN_KEEP_CACHE: the page cache of a file stays valid across opens. */
export const FOPEN_KEEP_CACHE = 1 << 1;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;

export interface RequestHeader {
  length: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
}

export function parseHeader(buffer: Buffer): RequestHeader {
  return {
    length: buffer.readUInt32LE(0),
    opcode: buffer.readUInt32LE(4),
    unique: buffer.readBigUInt64LE(8),
    nodeid: buffer.readBigUInt64LE(16),
    uid: buffer.readUInt32LE(24),
    gid: buffer.readUInt32LE(28),
    pid: buffer.readUInt32LE(32),
  };
}

export function outHeader(length: number, error: number, unique: bigint): Buffer {
  const header = Buffer.alloc(OUT_HEADER_SIZE);
  header.writeUInt32LE(length, 0);
  header.writeInt32LE(error, 4);
  header.writeBigUInt64LE(unique, 8);
  return header;
}

export interface Attributes {
  ino: bigint;
  size: number;
  /** Type and permission bits. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  mtime: number;
}

export const ATTR_SIZE = 88;

export function encodeAttr(attr: Attributes, into: Buffer, at: number): void {
  into.writeBigUInt64LE(attr.ino, at);
  into.writeBigUInt64LE(BigInt(attr.size), at + 8);
  into.writeBigUInt64LE(BigInt(Math.ceil(attr.size / 512)), at + 16);
  for (const offset of [24, 32, 40]) into.writeBigUInt64LE(BigInt(attr.mtime), at + offset);
  into.writeUInt32LE(attr.mode, at + 60);
  into.writeUInt32LE(attr.nlink, at + 64);
  into.writeUInt32LE(attr.uid, at + 68);
  into.writeUInt32LE(attr.gid, at + 72);
  into.writeUInt32LE(4096, at + 80);
}

/** fuse_entry_out: the node, its generation, how long the name and the attributes may be cached (seconds). */
export function entryOut(attr: Attributes, validSeconds: number): Buffer {
  const out = Buffer.alloc(40 + ATTR_SIZE);
  out.writeBigUInt64LE(attr.ino, 0);
  out.writeBigUInt64LE(BigInt(validSeconds), 16);
  out.writeBigUInt64LE(BigInt(validSeconds), 24);
  encodeAttr(attr, out, 40);
  return out;
}

export function attrOut(attr: Attributes, validSeconds: number): Buffer {
  const out = Buffer.alloc(16 + ATTR_SIZE);
  out.writeBigUInt64LE(BigInt(validSeconds), 0);
  encodeAttr(attr, out, 16);
  return out;
}

export function openOut(fh: bigint, flags: number): Buffer {
  const out = Buffer.alloc(16);
  out.writeBigUInt64LE(fh, 0);
  out.writeUInt32LE(flags, 8);
  return out;
}

/** fuse_init_out for the kernel's INIT (whose major, minor, max_readahead and flags are `request`); readahead at most `maxReadahead`. */
export function initOut(request: Buffer, maxPages: number, maxReadahead: number): Buffer {
  const kernelMinor = request.readUInt32LE(4);
  const kernelFlags = request.readUInt32LE(12);
  const out = Buffer.alloc(64);
  out.writeUInt32LE(FUSE_KERNEL_VERSION, 0);
  out.writeUInt32LE(Math.min(kernelMinor, FUSE_KERNEL_MINOR), 4);
  out.writeUInt32LE(Math.min(maxReadahead, request.readUInt32LE(8)), 8);
  out.writeUInt32LE(kernelFlags & (InitFlags.ASYNC_READ | InitFlags.MAX_PAGES), 12);
  out.writeUInt16LE(16, 16); // max_background
  out.writeUInt16LE(12, 18); // congestion_threshold
  out.writeUInt32LE(4096, 20); // max_write: nothing is written
  out.writeUInt32LE(1, 24); // time_gran
  out.writeUInt16LE(maxPages, 28);
  return out;
}

/** fuse_kstatfs of a read-only filesystem. */
export function statfsOut(blocks: number, files: number): Buffer {
  const out = Buffer.alloc(80);
  out.writeBigUInt64LE(BigInt(blocks), 0);
  out.writeBigUInt64LE(BigInt(files), 24);
  out.writeUInt32LE(4096, 40);
  out.writeUInt32LE(255, 44);
  out.writeUInt32LE(4096, 48);
  return out;
}

/** One fuse_dirent, padded to 8 bytes; `next` is the offset the kernel asks for to continue after it. */
export function dirent(ino: bigint, next: number, name: string, type: number): Buffer {
  const bytes = Buffer.from(name);
  const out = Buffer.alloc(24 + Math.ceil(bytes.length / 8) * 8);
  out.writeBigUInt64LE(ino, 0);
  out.writeBigUInt64LE(BigInt(next), 8);
  out.writeUInt32LE(bytes.length, 16);
  out.writeUInt32LE(type, 20);
  bytes.copy(out, 24);
  return out;
}
