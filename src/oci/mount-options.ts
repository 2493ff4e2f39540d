// Turns config.json mount options into mount(2) flags, propagation flags and fs data, as runc does.
import { SpecError } from '../errors/errors.js';

export const MS = {
  RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8, SYNCHRONOUS: 0x10, REMOUNT: 0x20, MANDLOCK: 0x40,
  DIRSYNC: 0x80, NOSYMFOLLOW: 0x100, NOATIME: 0x400, NODIRATIME: 0x800, BIND: 0x1000, REC: 0x4000,
  SILENT: 0x8000, UNBINDABLE: 0x20000, PRIVATE: 0x40000, SLAVE: 0x80000, SHARED: 0x100000,
  RELATIME: 0x200000, STRICTATIME: 0x1000000, LAZYTIME: 0x2000000,
} as const;

// option → [clear?, flag]
const FLAGS: Record<string, [boolean, number]> = {
  ro: [false, MS.RDONLY], rw: [true, MS.RDONLY],
  nosuid: [false, MS.NOSUID], suid: [true, MS.NOSUID],
  nodev: [false, MS.NODEV], dev: [true, MS.NODEV],
  noexec: [false, MS.NOEXEC], exec: [true, MS.NOEXEC],
  sync: [false, MS.SYNCHRONOUS], async: [true, MS.SYNCHRONOUS],
  dirsync: [false, MS.DIRSYNC], remount: [false, MS.REMOUNT], mand: [false, MS.MANDLOCK], nomand: [true, MS.MANDLOCK],
  atime: [true, MS.NOATIME], noatime: [false, MS.NOATIME],
  diratime: [true, MS.NODIRATIME], nodiratime: [false, MS.NODIRATIME],
  bind: [false, MS.BIND], rbind: [false, MS.BIND | MS.REC],
  relatime: [false, MS.RELATIME], norelatime: [true, MS.RELATIME],
  strictatime: [false, MS.STRICTATIME], nostrictatime: [true, MS.STRICTATIME],
  lazytime: [false, MS.LAZYTIME], nolazytime: [true, MS.LAZYTIME],
  nosymfollow: [false, MS.NOSYMFOLLOW], symfollow: [true, MS.NOSYMFOLLOW],
  silent: [false, MS.SILENT], loud: [true, MS.SILENT],
  defaults: [false, 0],
};

const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE, rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED, rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE, rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE, runbindable: MS.UNBINDABLE | MS.REC,
};

export interface ParsedMountOptions {
  flags: number;
  propagation: number;
  data: string;
}

export function parseMountOptions(options: readonly string[] | undefined): ParsedMountOptions {
  let flags = 0;
  let propagation = 0;
  const data: string[] = [];
  for (const option of options ?? []) {
    const flag = FLAGS[option];
    if (flag) {
      flags = flag[0] ? flags & ~flag[1] : flags | flag[1];
    } else if (option in PROPAGATION) {
      propagation |= PROPAGATION[option]!;
    } else {
      data.push(option);
    }
  }
  return { flags, propagation, data: data.join(',') };
}

/** linux.rootfsPropagation → flags; runc's default is rslave. */
export function rootfsPropagation(value: string | undefined): number {
  if (value === undefined || value === '') return MS.SLAVE | MS.REC;
  const flags = PROPAGATION[value];
  if (flags === undefined) throw new SpecError(`invalid linux.rootfsPropagation "${value}"`);
  return flags;
}
