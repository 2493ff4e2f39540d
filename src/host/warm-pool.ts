// The warm pool (docs/warm-pool.md) as the TypeScript sees it: where an install's idle pooled processes wait, how
// their sockets are named, the build id of each kind's code, the size and idle time configured, and what a pool
// holds now. The launchers' C (native/common/warm-pool.c) takes from it and refills it by the same rules.
import { lstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { isProcessAlive, processRssKib } from './host-process.js';
import { PROJECT_ROOT } from './install-paths.js';
import {
  ENV_POOL_DIR, ENV_POOL_IDLE_SECONDS, ENV_POOL_SIZE, POOL_CLI_CODE, POOL_DEFAULT_IDLE_SECONDS, POOL_DEFAULT_SIZE,
  POOL_INSTALL_DIR_NAME_LENGTH, POOL_KIND_NAMES, POOL_MAX_IDLE_SECONDS, POOL_MAX_SIZE, POOL_MEMBER_SOCKET, POOL_ROOT,
  POOL_SHIM_CODE,
} from '../generated/facts.js';

/** shimvm: a shim holding a pod's microVM, restored and waiting (docs/warm-pool.md, "VM members"). */
export type PoolKind = 'shim' | 'cli' | 'shimvm';
export const POOL_KINDS = POOL_KIND_NAMES as readonly PoolKind[];

export interface PoolSettings {
  size: number;
  idleSeconds: number;
}

export const validPoolSize = (size: unknown): size is number => Number.isInteger(size) && (size as number) >= 0 && (size as number) <= POOL_MAX_SIZE;
export const validIdleSeconds = (seconds: unknown): seconds is number =>
  Number.isInteger(seconds) && (seconds as number) >= 1 && (seconds as number) <= POOL_MAX_IDLE_SECONDS;

/** Size and idle time from ENV_POOL_SIZE and ENV_POOL_IDLE_SECONDS: a value that is not a decimal in range leaves the default. */
export function poolSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): PoolSettings {
  const number = (text: string | undefined) => (text !== undefined && /^\d{1,9}$/.test(text) ? Number(text) : undefined);
  const size = number(env[ENV_POOL_SIZE]);
  const idleSeconds = number(env[ENV_POOL_IDLE_SECONDS]);
  return {
    size: validPoolSize(size) ? size : POOL_DEFAULT_SIZE,
    idleSeconds: validIdleSeconds(idleSeconds) ? idleSeconds : POOL_DEFAULT_IDLE_SECONDS,
  };
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;

function fnv1a(text: string, hash = FNV_OFFSET): bigint {
  for (const byte of Buffer.from(text)) hash = ((hash ^ BigInt(byte)) * FNV_PRIME) & 0xffffffffffffffffn;
  return hash;
}

/** The install's directory (bin/, dist/), symlinks resolved. */
export function installDirectory(): string {
  return realpathSync(PROJECT_ROOT);
}

/** ENV_POOL_DIR, else POOL_ROOT/ and FNV-1a 64 of the install's directory in hex. */
export function poolDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const chosen = env[ENV_POOL_DIR];
  if (chosen) return chosen;
  return join(POOL_ROOT, fnv1a(installDirectory()).toString(16).padStart(POOL_INSTALL_DIR_NAME_LENGTH, '0'));
}

/**
 * The build id of a kind's code as installed now: FNV-1a 64 of "PATH INODE SIZE MTIME_NS\n" for each of its files.
 * A rebuilt file (a new bundle) gives another id, so pooled processes started before it are not taken. Undefined
 * when a file is missing.
 */
export function buildId(kind: PoolKind, install = installDirectory()): string | undefined {
  let hash = FNV_OFFSET;
  for (const file of kind === 'cli' ? POOL_CLI_CODE : POOL_SHIM_CODE) {
    let stats;
    try {
      stats = statSync(join(install, file), { bigint: true });
    } catch {
      return undefined;
    }
    hash = fnv1a(`${file} ${stats.ino} ${stats.size} ${stats.mtimeNs}\n`, hash);
  }
  return hash.toString(16).padStart(16, '0');
}

export interface PoolMember {
  kind: PoolKind;
  build: string;
  pid: number;
  startTime: string;
  socket: string;
}

export function memberSocketName(member: Omit<PoolMember, 'socket'>): string {
  return POOL_MEMBER_SOCKET(member.kind, member.build, member.pid, member.startTime);
}

/** A socket name that POOL_MEMBER_SOCKET made, read back; undefined for anything else. */
export function parseMemberName(name: string): Omit<PoolMember, 'socket'> | undefined {
  const match = /^([a-z]+)\.([0-9a-f]{16})\.(\d{1,9})\.(\d{1,31})\.sock$/.exec(name);
  if (!match || !(POOL_KINDS as readonly string[]).includes(match[1]!)) return undefined;
  return { kind: match[1] as PoolKind, build: match[2]!, pid: Number(match[3]), startTime: match[4]! };
}

export interface PoolMemberState extends PoolMember {
  /** Alive, of the build installed now: a launcher would hand it work. */
  usable: boolean;
  alive: boolean;
  rssKib: number | undefined;
}

/** What the pool directory holds, member by member (none when it does not exist), usable for install's code. */
export function poolMembers(dir = poolDirectory(), install = installDirectory()): PoolMemberState[] {
  let names: string[];
  try {
    if (!lstatSync(dir).isDirectory()) return [];
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const builds = new Map<PoolKind, string | undefined>(POOL_KINDS.map((kind) => [kind, buildId(kind, install)]));
  const members: PoolMemberState[] = [];
  for (const name of names.sort()) {
    const member = parseMemberName(name);
    if (!member) continue;
    const alive = isProcessAlive(member.pid, member.startTime);
    members.push({
      ...member,
      socket: join(dir, name),
      alive,
      usable: alive && builds.get(member.kind) === member.build,
      rssKib: alive ? processRssKib(member.pid) : undefined,
    });
  }
  return members;
}

/** Why the last member of a kind could not join its pool: written by the member before it exits. */
export interface MemberFailure {
  pid: number;
  at: string;
  message: string;
}

function failureFile(dir: string, kind: PoolKind): string {
  return join(dir, `${kind}.failed`);
}

/** Records (replacing the last) why this process cannot be a member of kind in the pool at dir. */
export function recordMemberFailure(dir: string, kind: PoolKind, message: string): void {
  try {
    writeFileAtomic(failureFile(dir, kind), `${JSON.stringify({ pid: process.pid, at: new Date().toISOString(), message })}\n`, 0o600, false);
  } catch {
    // the pool directory is gone: there is no pool to tell
  }
}

/** The last failure recorded for each kind that has one. */
export function memberFailures(dir = poolDirectory()): Partial<Record<PoolKind, MemberFailure>> {
  const failures: Partial<Record<PoolKind, MemberFailure>> = {};
  for (const kind of POOL_KINDS) {
    try {
      failures[kind] = JSON.parse(readFileSync(failureFile(dir, kind), 'utf8')) as MemberFailure;
    } catch {
      // none, or one being replaced
    }
  }
  return failures;
}
