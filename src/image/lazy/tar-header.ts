// Tar headers as a writer of layers needs them: ustar, with a PAX extended header before it for what ustar cannot
// hold (long names and link targets, large ids and sizes, xattrs as SCHILY.xattr.*).
import type { TocEntryType } from './estargz-toc.js';

export interface HeaderFields {
  name: string;
  type: TocEntryType | 'pax';
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds. */
  mtime: number;
  linkName?: string;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, Buffer>;
}

const TYPEFLAG: Record<HeaderFields['type'], string> = { reg: '0', chunk: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6', pax: 'x' };

function octal(value: number, length: number): string {
  return `${value.toString(8).padStart(length - 1, '0')}\0`;
}

function fits(value: number, length: number): boolean {
  return value >= 0 && value < 8 ** (length - 1);
}

function paxRecord(key: string, value: Buffer): Buffer {
  // "LEN key=value\n" where LEN counts itself.
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

function ustar(fields: HeaderFields, name: string, linkName: string): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, 'utf8');
  block.write(octal(fields.mode & 0o7777, 8), 100, 'latin1');
  block.write(octal(fits(fields.uid, 8) ? fields.uid : 0, 8), 108, 'latin1');
  block.write(octal(fits(fields.gid, 8) ? fields.gid : 0, 8), 116, 'latin1');
  block.write(octal(fits(fields.size, 12) ? fields.size : 0, 12), 124, 'latin1');
  block.write(octal(fits(fields.mtime, 12) ? Math.max(0, Math.floor(fields.mtime)) : 0, 12), 136, 'latin1');
  block.write('        ', 148, 'latin1');
  block.write(TYPEFLAG[fields.type], 156, 'latin1');
  block.write(linkName, 157, 100, 'utf8');
  block.write('ustar\x0000', 257, 'latin1');
  block.write(octal(fields.devMajor ?? 0, 8), 329, 'latin1');
  block.write(octal(fields.devMinor ?? 0, 8), 337, 'latin1');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(octal(sum, 7), 148, 'latin1');
  return block;
}

function pad(length: number): Buffer {
  return Buffer.alloc((512 - (length % 512)) % 512);
}

/** The header blocks of an entry (PAX first when needed); its data and padding are the caller's. */
export function encodeHeader(fields: HeaderFields): Buffer {
  const records: Buffer[] = [];
  const name = Buffer.from(fields.name);
  const link = Buffer.from(fields.linkName ?? '');
  if (name.length > 100) records.push(paxRecord('path', name));
  if (link.length > 100) records.push(paxRecord('linkpath', link));
  if (!fits(fields.size, 12)) records.push(paxRecord('size', Buffer.from(String(fields.size))));
  if (!fits(fields.uid, 8)) records.push(paxRecord('uid', Buffer.from(String(fields.uid))));
  if (!fits(fields.gid, 8)) records.push(paxRecord('gid', Buffer.from(String(fields.gid))));
  for (const [key, value] of Object.entries(fields.xattrs ?? {})) records.push(paxRecord(`SCHILY.xattr.${key}`, value));
  const main = ustar(fields, name.length > 100 ? name.subarray(0, 99).toString('latin1').replace(/[^\x20-\x7e]/g, '_') : fields.name, link.length > 100 ? '' : fields.linkName ?? '');
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  return Buffer.concat([ustar({ ...fields, type: 'pax', size: pax.length, name: 'PaxHeader' }, 'PaxHeader', ''), pax, pad(pax.length), main]);
}

export function padding(length: number): Buffer {
  return pad(length);
}
