// A read-only EROFS filesystem image made from a tree in memory, deterministically (the same tree gives the same
// bytes): the metadata (superblock, inodes, directories, symlinks, xattrs) as one buffer, and where each regular
// file's data lies in the image, block-aligned, in the order asked for. The caller serves the data region from
// wherever the bytes are (lazy loading: eStargz chunks); this module never sees file contents.
// Format: linux/fs/erofs/erofs_fs.h. Extended (64-byte) inodes, uncompressed data, directories and symlinks inline
// after their inode when they fit in its block, inline xattrs.
import { LazyTreeError } from '../errors/errors.js';

export const BLOCK = 4096;
const SUPERBLOCK_OFFSET = 1024;
const MAGIC = 0xe0f5e1e2;
const INODE_SIZE = 64;
const SLOT = 32;
const DIRENT_SIZE = 12;
const LAYOUT_PLAIN = 0;
const LAYOUT_INLINE = 2;

export type NodeType = 'dir' | 'reg' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

const FILE_TYPE: Record<NodeType, number> = { reg: 1, dir: 2, char: 3, block: 4, fifo: 5, socket: 6, symlink: 7 };
const MODE_TYPE: Record<NodeType, number> = { reg: 0o100000, dir: 0o040000, char: 0o020000, block: 0o060000, fifo: 0o010000, socket: 0o140000, symlink: 0o120000 };
const XATTR_PREFIXES: Array<[string, number]> = [
  ['user.', 1],
  ['system.posix_acl_access', 2],
  ['system.posix_acl_default', 3],
  ['trusted.', 4],
  ['security.', 6],
];

export interface TreeNode<Data = unknown> {
  type: NodeType;
  /** Permission bits, setuid/setgid/sticky included. */
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  /** Regular files: their size; the data itself is the caller's (`data`). */
  size: number;
  data?: Data;
  target?: string;
  rdevMajor?: number;
  rdevMinor?: number;
  xattrs?: Map<string, Buffer>;
  children?: Map<string, TreeNode<Data>>;
}

export interface DataExtent<Data> {
  /** Where the file's bytes begin in the image (a multiple of BLOCK). */
  start: number;
  size: number;
  node: TreeNode<Data>;
}

export interface ErofsImage<Data> {
  /** The image's bytes from 0 up to the data region (a multiple of BLOCK). */
  meta: Buffer;
  /** The image's whole size; bytes not in `meta` nor in an extent are zeros. */
  size: number;
  /** Regular files' data, by start. */
  extents: DataExtent<Data>[];
}

interface Placed<Data> {
  node: TreeNode<Data>;
  nid: number;
  ino: number;
  nlink: number;
  xattrBody: Buffer;
  /** Directory entries (sorted) or symlink target: the inode's own data. */
  payloadSize: number;
  inline: boolean;
  /** Plain layout: its first block. */
  blkaddr: number;
  entries?: Array<{ name: Buffer; node: TreeNode<Data> }>;
}

function xattrBody(xattrs: Map<string, Buffer> | undefined): Buffer {
  if (!xattrs || xattrs.size === 0) return Buffer.alloc(0);
  const parts: Buffer[] = [Buffer.alloc(12)];
  for (const [key, value] of [...xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const prefix = XATTR_PREFIXES.find(([p]) => key.startsWith(p));
    if (!prefix) continue;
    const name = Buffer.from(key.slice(prefix[0].length));
    if (name.length > 255 || value.length > 65535) continue;
    const entry = Buffer.alloc(Math.ceil((4 + name.length + value.length) / 4) * 4);
    entry[0] = name.length;
    entry[1] = prefix[1];
    entry.writeUInt16LE(value.length, 2);
    name.copy(entry, 4);
    value.copy(entry, 4 + name.length);
    parts.push(entry);
  }
  return parts.length === 1 ? Buffer.alloc(0) : Buffer.concat(parts);
}

/** Directory entries in blocks: each block its dirents then its names; the size counts the last block's used bytes. */
function directoryBlocks(entries: Array<{ name: Buffer; nid: number; type: number }>): { blocks: Buffer[]; size: number } {
  const blocks: Buffer[] = [];
  let size = 0;
  let start = 0;
  while (start < entries.length) {
    let end = start;
    let used = 0;
    while (end < entries.length && used + DIRENT_SIZE + entries[end]!.name.length <= BLOCK) used += DIRENT_SIZE + entries[end++]!.name.length;
    const block = Buffer.alloc(BLOCK);
    let nameOffset = (end - start) * DIRENT_SIZE;
    for (let i = start; i < end; i++) {
      const entry = entries[i]!;
      const at = (i - start) * DIRENT_SIZE;
      block.writeBigUInt64LE(BigInt(entry.nid), at);
      block.writeUInt16LE(nameOffset, at + 8);
      block[at + 10] = entry.type;
      entry.name.copy(block, nameOffset);
      nameOffset += entry.name.length;
    }
    blocks.push(block);
    size = (blocks.length - 1) * BLOCK + used;
    start = end;
  }
  return { blocks, size };
}

function directoryPayloadSize(names: Buffer[]): number {
  // The same packing as directoryBlocks, without nids.
  let size = 0;
  let blocks = 0;
  let used = BLOCK + 1;
  for (const name of names) {
    if (used + DIRENT_SIZE + name.length > BLOCK) {
      blocks++;
      used = 0;
    }
    used += DIRENT_SIZE + name.length;
    size = (blocks - 1) * BLOCK + used;
  }
  return size;
}

const compareNames = (a: { name: Buffer }, b: { name: Buffer }): number => Buffer.compare(a.name, b.name);

/**
 * The image of the tree under `root`. `dataOrder` lists regular files whose data goes first, in that order (the
 * files a workload reads first: neighbours on the disk); the others follow in the order the tree walk meets them.
 */
export function buildErofs<Data>(root: TreeNode<Data>, options: { uuid: Buffer; dataOrder?: TreeNode<Data>[]; buildTime?: number }): ErofsImage<Data> {
  if (root.type !== 'dir') throw new Error('the root of an EROFS image must be a directory');
  // Walk: every node once (hardlinks are one node under several names), parents before children.
  const placed = new Map<TreeNode<Data>, Placed<Data>>();
  const order: Placed<Data>[] = [];
  const parents = new Map<TreeNode<Data>, TreeNode<Data>>();
  const visit = (node: TreeNode<Data>, parent: TreeNode<Data>): void => {
    const seen = placed.get(node);
    if (seen) {
      seen.nlink++;
      return;
    }
    const record: Placed<Data> = { node, nid: 0, ino: order.length + 1, nlink: 1, xattrBody: xattrBody(node.xattrs), payloadSize: 0, inline: false, blkaddr: 0 };
    placed.set(node, record);
    order.push(record);
    if (node.type === 'dir') {
      parents.set(node, parent);
      const children = [...(node.children ?? new Map<string, TreeNode<Data>>())].map(([name, child]) => ({ name: Buffer.from(name), node: child }));
      record.entries = [...children, { name: Buffer.from('.'), node }, { name: Buffer.from('..'), node: parent }].sort(compareNames);
      record.payloadSize = directoryPayloadSize(record.entries.map((entry) => entry.name));
      record.nlink = 2 + children.filter((child) => child.node.type === 'dir').length;
      for (const child of children.sort(compareNames)) visit(child.node, node);
    } else if (node.type === 'symlink') {
      record.payloadSize = Buffer.byteLength(node.target ?? '');
    }
  };
  visit(root, root);
  for (const record of order) if (record.node.type === 'dir') record.nlink = 2 + [...(record.node.children?.values() ?? [])].filter((child) => child.type === 'dir').length;

  // Inodes from block 1 (meta_blkaddr 0: a nid is the byte offset / 32; the root's must fit 16 bits).
  let position = BLOCK;
  for (const record of order) {
    const head = INODE_SIZE + record.xattrBody.length;
    const tail = record.node.type === 'dir' || record.node.type === 'symlink' ? record.payloadSize : 0;
    record.inline = tail > 0 && tail < BLOCK && head + tail <= BLOCK;
    const need = head + (record.inline ? tail : 0);
    if ((position % BLOCK) + need > BLOCK) position = Math.ceil(position / BLOCK) * BLOCK;
    record.nid = position / SLOT;
    position += Math.ceil(need / SLOT) * SLOT;
  }
  if (placed.get(root)!.nid > 0xffff) throw new LazyTreeError('EROFS: the root inode is too far');
  // Directory and symlink data that does not fit inline, then regular files' data.
  let nextBlock = Math.ceil(position / BLOCK);
  for (const record of order) {
    if ((record.node.type === 'dir' || record.node.type === 'symlink') && !record.inline && record.payloadSize > 0) {
      record.blkaddr = nextBlock;
      nextBlock += Math.ceil(record.payloadSize / BLOCK);
    }
  }
  const metaBlocks = nextBlock;
  const dataFirst = new Set<TreeNode<Data>>();
  const extents: DataExtent<Data>[] = [];
  const placeData = (node: TreeNode<Data>): void => {
    if (dataFirst.has(node)) return;
    dataFirst.add(node);
    if (node.size === 0) return;
    placed.get(node)!.blkaddr = nextBlock;
    extents.push({ start: nextBlock * BLOCK, size: node.size, node });
    nextBlock += Math.ceil(node.size / BLOCK);
  };
  for (const node of options.dataOrder ?? []) if (placed.has(node) && node.type === 'reg') placeData(node);
  for (const record of order) if (record.node.type === 'reg') placeData(record.node);
  if (nextBlock > 0xffffffff) throw new LazyTreeError('EROFS: the image is larger than 16 TiB');

  const meta = Buffer.alloc(metaBlocks * BLOCK);
  for (const record of order) writeInode(meta, record, placed);
  writeSuperblock(meta, { rootNid: placed.get(root)!.nid, inodes: order.length, blocks: nextBlock, uuid: options.uuid, buildTime: options.buildTime ?? 0 });
  return { meta, size: nextBlock * BLOCK, extents };
}

function writeInode<Data>(meta: Buffer, record: Placed<Data>, placed: Map<TreeNode<Data>, Placed<Data>>): void {
  const { node } = record;
  const at = record.nid * SLOT;
  let payload: Buffer | undefined;
  let size = node.size;
  if (node.type === 'dir') {
    const { blocks, size: dirSize } = directoryBlocks(record.entries!.map((entry) => ({ name: entry.name, nid: placed.get(entry.node)!.nid, type: FILE_TYPE[entry.node.type] })));
    payload = Buffer.concat(blocks).subarray(0, dirSize);
    size = dirSize;
  } else if (node.type === 'symlink') {
    payload = Buffer.from(node.target ?? '');
    size = payload.length;
  } else if (node.type !== 'reg') {
    size = 0;
  }
  const layout = record.inline ? LAYOUT_INLINE : LAYOUT_PLAIN;
  meta.writeUInt16LE(1 | (layout << 1), at);
  meta.writeUInt16LE(record.xattrBody.length ? (record.xattrBody.length - 12) / 4 + 1 : 0, at + 2);
  meta.writeUInt16LE(MODE_TYPE[node.type] | (node.mode & 0o7777), at + 4);
  meta.writeBigUInt64LE(BigInt(size), at + 8);
  if (node.type === 'char' || node.type === 'block') {
    const major = node.rdevMajor ?? 0;
    const minor = node.rdevMinor ?? 0;
    meta.writeUInt32LE(((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, at + 16);
  } else {
    meta.writeUInt32LE(record.inline ? 0 : record.blkaddr, at + 16);
  }
  meta.writeUInt32LE(record.ino, at + 20);
  meta.writeUInt32LE(node.uid >>> 0, at + 24);
  meta.writeUInt32LE(node.gid >>> 0, at + 28);
  meta.writeBigUInt64LE(BigInt(Math.max(0, Math.floor(node.mtime))), at + 32);
  meta.writeUInt32LE(node.mtimeNsec >>> 0, at + 40);
  meta.writeUInt32LE(record.nlink, at + 44);
  record.xattrBody.copy(meta, at + INODE_SIZE);
  if (payload && payload.length > 0) payload.copy(meta, record.inline ? at + INODE_SIZE + record.xattrBody.length : record.blkaddr * BLOCK);
}

function writeSuperblock(meta: Buffer, sb: { rootNid: number; inodes: number; blocks: number; uuid: Buffer; buildTime: number }): void {
  const at = SUPERBLOCK_OFFSET;
  meta.writeUInt32LE(MAGIC, at);
  meta[at + 12] = 12; // blkszbits: 4096
  meta.writeUInt16LE(sb.rootNid, at + 14);
  meta.writeBigUInt64LE(BigInt(sb.inodes), at + 16);
  meta.writeBigUInt64LE(BigInt(sb.buildTime), at + 24);
  meta.writeUInt32LE(sb.blocks, at + 36);
  sb.uuid.copy(meta, at + 48, 0, 16);
  Buffer.from('runbox-lazy').copy(meta, at + 64);
}
