// The entries of an uncompressed tar file and where each file's bytes are in it: how a layer that is not eStargz,
// pulled whole and stored uncompressed, is served from the same tree as the lazy ones. Reads headers only
// (ustar, PAX extended headers, GNU long names).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { TocEntry, TocEntryType } from './estargz-toc.js';
import { LazyTreeError } from '../../errors/errors.js';

export interface TarEntry extends TocEntry {
  /** Where the entry's data begins in the tar. */
  dataOffset: number;
}

const TYPES: Record<string, TocEntryType> = { '0': 'reg', '\0': 'reg', '7': 'reg', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };

function field(block: Buffer, from: number, length: number): string {
  return block.toString('utf8', from, from + length).replace(/\0.*$/s, '');
}

function number(block: Buffer, from: number, length: number): number {
  if (block[from]! & 0x80) {
    let value = 0;
    for (let i = from + 1; i < from + length; i++) value = value * 256 + block[i]!;
    return value;
  }
  const text = field(block, from, length).trim();
  return text ? Number.parseInt(text, 8) : 0;
}

function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number(data.toString('latin1', at, space));
    if (!Number.isSafeInteger(length) || length <= 0 || at + length > data.length) break;
    const record = data.subarray(space + 1, at + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq > 0) records.set(record.toString('utf8', 0, eq), record.toString('utf8', eq + 1));
    at += length;
  }
  return records;
}

/** Every entry of the tar file at `path` (regular files with their data offset). */
export function indexTar(path: string): TarEntry[] {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const entries: TarEntry[] = [];
    const header = Buffer.alloc(512);
    let offset = 0;
    let pax = new Map<string, string>();
    let longName: string | undefined;
    let longLink: string | undefined;
    const readData = (at: number, length: number): Buffer => {
      if (length > 16 * 1024 * 1024) throw new LazyTreeError(`tar: an extended header of ${length} bytes`);
      const data = Buffer.alloc(length);
      readSync(fd, data, 0, length, at);
      return data;
    };
    while (offset + 512 <= size) {
      readSync(fd, header, 0, 512, offset);
      if (header.every((byte) => byte === 0)) break;
      const type = String.fromCharCode(header[156]!);
      const entrySize = number(header, 124, 12);
      const dataOffset = offset + 512;
      offset = dataOffset + Math.ceil(entrySize / 512) * 512;
      if (type === 'x') {
        pax = paxRecords(readData(dataOffset, entrySize));
        continue;
      }
      if (type === 'g') continue;
      if (type === 'L' || type === 'K') {
        const text = readData(dataOffset, entrySize).toString('utf8').replace(/\0.*$/s, '');
        if (type === 'L') longName = text;
        else longLink = text;
        continue;
      }
      const prefix = field(header, 345, 155);
      const name = pax.get('path') ?? longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
      const kind = TYPES[type];
      if (kind) {
        const xattrs: Record<string, Buffer> = {};
        for (const [key, value] of pax) if (key.startsWith('SCHILY.xattr.')) xattrs[key.slice(13)] = Buffer.from(value, 'utf8');
        const mtime = Number(pax.get('mtime') ?? number(header, 136, 12));
        const realSize = Number(pax.get('size') ?? entrySize);
        entries.push({
          name: name.split('/').filter((p) => p && p !== '.').join('/'),
          type: kind,
          size: kind === 'reg' ? realSize : 0,
          modtime: new Date(Math.floor(mtime) * 1000).toISOString(),
          mode: number(header, 100, 8) & 0o7777,
          uid: Number(pax.get('uid') ?? number(header, 108, 8)),
          gid: Number(pax.get('gid') ?? number(header, 116, 8)),
          devMajor: number(header, 329, 8),
          devMinor: number(header, 337, 8),
          offset: 0,
          chunkOffset: 0,
          chunkSize: 0,
          innerOffset: 0,
          dataOffset,
          ...(kind === 'symlink' || kind === 'hardlink' ? { linkName: pax.get('linkpath') ?? longLink ?? field(header, 157, 100) } : {}),
          ...(Object.keys(xattrs).length ? { xattrs } : {}),
        });
        if (entries.at(-1)!.name.split('/').includes('..')) throw new LazyTreeError(`tar entry "${name.slice(0, 200)}" climbs out of the layer`);
        if (kind === 'reg' && realSize !== entrySize) offset = dataOffset + Math.ceil(realSize / 512) * 512;
      }
      pax = new Map();
      longName = undefined;
      longLink = undefined;
    }
    return entries;
  } finally {
    closeSync(fd);
  }
}
