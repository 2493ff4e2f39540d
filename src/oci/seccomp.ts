// config.json's linux.seccomp (runtime-spec config-linux.md "Seccomp") checked and resolved to the numbers the
// kernel takes, with runc's meaning: each name a rule of its own, args on one index each ANDed in one rule,
// args that repeat an index each a rule of their own (ORed); errnoRet defaults to EPERM.
import { isAbsolute } from 'node:path';
import { SpecError } from '../errors/errors.js';

const EPERM = 1;
/** The kernel's errno ceiling (MAX_ERRNO): SECCOMP_RET_ERRNO clamps anything above it. */
const MAX_ERRNO = 4095;

/** SECCOMP_RET_* (linux/seccomp.h); SCMP_ACT_KILL is libseccomp's name for KILL_THREAD. */
const ACTIONS: Record<string, number> = {
  SCMP_ACT_KILL: 0x00000000,
  SCMP_ACT_KILL_THREAD: 0x00000000,
  SCMP_ACT_KILL_PROCESS: 0x80000000,
  SCMP_ACT_TRAP: 0x00030000,
  SCMP_ACT_ERRNO: 0x00050000,
  SCMP_ACT_TRACE: 0x7ff00000,
  SCMP_ACT_LOG: 0x7ffc0000,
  SCMP_ACT_ALLOW: 0x7fff0000,
  SCMP_ACT_NOTIFY: 0x7fc00000,
};
const TAKES_ERRNO = new Set(['SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE']);

/** libseccomp's enum scmp_compare. */
const OPERATORS: Record<string, number> = {
  SCMP_CMP_NE: 1, SCMP_CMP_LT: 2, SCMP_CMP_LE: 3, SCMP_CMP_EQ: 4, SCMP_CMP_GE: 5, SCMP_CMP_GT: 6, SCMP_CMP_MASKED_EQ: 7,
};

/** SECCOMP_FILTER_FLAG_*; WAIT_KILLABLE_RECV only means something with a listener (SCMP_ACT_NOTIFY). */
const FLAGS: Record<string, number> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 32,
};

/**
 * Syscalls a SCMP_ACT_NOTIFY rule cannot name: runc refuses `write`; runbox's container process hands its
 * listener to the runtime with `sendmsg`, which would wait for a seccomp agent that has no listener yet.
 */
const NOT_NOTIFIABLE: Record<string, string> = {
  write: 'SCMP_ACT_NOTIFY cannot be used for the write syscall',
  sendmsg: 'SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall: the container\'s process hands its seccomp listener to runbox with it',
};

/** The runtime-spec's architectures, as libseccomp names them (seccomp_arch_resolve_name). */
const ARCHITECTURES = new Set([
  'X86', 'X86_64', 'X32', 'ARM', 'AARCH64', 'MIPS', 'MIPS64', 'MIPS64N32', 'MIPSEL', 'MIPSEL64', 'MIPSEL64N32', 'PPC',
  'PPC64', 'PPC64LE', 'S390', 'S390X', 'PARISC', 'PARISC64', 'RISCV64',
]);

/** linux.seccomp in the runtime-spec features document (features-linux.md). */
export function seccompFeatures() {
  const known = Object.keys(ACTIONS);
  return {
    enabled: true,
    actions: known,
    operators: Object.keys(OPERATORS),
    archs: [...ARCHITECTURES].map((arch) => `SCMP_ARCH_${arch}`),
    knownFlags: Object.keys(FLAGS),
    supportedFlags: Object.keys(FLAGS),
  };
}

export interface SeccompArg {
  index: number;
  op: number;
  value: number;
  valueTwo: number;
}

export interface SeccompRule {
  name: string;
  action: number;
  args: SeccompArg[];
}

/** What the agent compiles (PROTOCOL.md, `seccomp_*`). */
export interface SeccompFilter {
  defaultAction: number;
  architectures: string[];
  flags: number;
  rules: SeccompRule[];
  /** With SCMP_ACT_NOTIFY rules: the seccomp agent's socket (listenerPath) and what it is told (listenerMetadata). */
  listener?: { path: string; metadata: string };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringList(value: unknown, where: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) throw new SpecError(`${where} must be a list of strings`);
  return value as string[];
}

function action(name: unknown, errnoRet: unknown, where: string): number {
  if (typeof name !== 'string' || !(name in ACTIONS)) throw new SpecError(`${where}: string ${String(name)} is not a valid action for seccomp`);
  if (errnoRet === undefined || errnoRet === null) return (ACTIONS[name]! | (TAKES_ERRNO.has(name) ? EPERM : 0)) >>> 0;
  if (!TAKES_ERRNO.has(name)) throw new SpecError(`${where}: errnoRet is set but ${name} returns no errno`);
  if (!Number.isInteger(errnoRet) || (errnoRet as number) < 0 || (errnoRet as number) > MAX_ERRNO) {
    throw new SpecError(`${where}: errnoRet must be an errno number between 0 and ${MAX_ERRNO}, not ${JSON.stringify(errnoRet)}`);
  }
  return (ACTIONS[name]! | (errnoRet as number)) >>> 0;
}

/** A uint64 as JSON numbers hold it: beyond 2^53 its digits are gone, and the filter would compare another value. */
function uint64(value: unknown, where: string): number {
  if (!Number.isInteger(value) || (value as number) < 0) throw new SpecError(`${where} must be an unsigned integer, not ${JSON.stringify(value)}`);
  if (!Number.isSafeInteger(value)) throw new SpecError(`${where} ${String(value)} is beyond 2^53: runbox reads JSON numbers as doubles and would compare another value`);
  return value as number;
}

function args(value: unknown, where: string): SeccompArg[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new SpecError(`${where} must be a list`);
  return value.map((arg, i) => {
    const at = `${where}[${i}]`;
    if (!isObject(arg)) throw new SpecError(`${at} must be an object`);
    if (!Number.isInteger(arg.index) || (arg.index as number) < 0 || (arg.index as number) > 5) {
      throw new SpecError(`${at}.index must be a syscall argument index from 0 to 5, not ${JSON.stringify(arg.index)}`);
    }
    const op = arg.op;
    if (typeof op !== 'string' || !(op in OPERATORS)) throw new SpecError(`${at}: string ${String(op)} is not a valid operator for seccomp`);
    return {
      index: arg.index as number,
      op: OPERATORS[op]!,
      value: uint64(arg.value, `${at}.value`),
      valueTwo: arg.valueTwo === undefined || arg.valueTwo === null ? 0 : uint64(arg.valueTwo, `${at}.valueTwo`),
    };
  });
}

/**
 * linux.seccomp resolved, or undefined when it asks for no filter (absent, or no defaultAction and no syscalls, as
 * runc reads it). Throws a SpecError naming the field that is wrong.
 */
export function seccompFilter(value: unknown): SeccompFilter | undefined {
  if (value === undefined || value === null) return undefined;
  const where = 'linux.seccomp';
  if (!isObject(value)) throw new SpecError(`${where} must be an object`);
  const syscalls = value.syscalls ?? [];
  if (!Array.isArray(syscalls)) throw new SpecError(`${where}.syscalls must be a list`);
  if ((value.defaultAction === undefined || value.defaultAction === '') && syscalls.length === 0) return undefined;
  const defaultAction = action(value.defaultAction, value.defaultErrnoRet, `${where}.defaultAction`);
  if (defaultAction === ACTIONS.SCMP_ACT_NOTIFY) throw new SpecError(`${where}.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action`);

  const architectures = stringList(value.architectures, `${where}.architectures`).map((arch) => {
    const name = arch.startsWith('SCMP_ARCH_') ? arch.slice('SCMP_ARCH_'.length) : '';
    if (!ARCHITECTURES.has(name)) throw new SpecError(`${where}.architectures: string ${arch} is not a valid arch for seccomp`);
    return name.toLowerCase();
  });

  let flags = 0;
  for (const flag of stringList(value.flags, `${where}.flags`)) {
    const bit = FLAGS[flag];
    if (bit === undefined) throw new SpecError(`${where}.flags: seccomp flag ${flag} is not known to runbox`);
    flags |= bit;
  }

  const rules: SeccompRule[] = [];
  syscalls.forEach((call: unknown, i) => {
    const at = `${where}.syscalls[${i}]`;
    if (!isObject(call)) throw new SpecError(`${at} must be an object`);
    const names = stringList(call.names, `${at}.names`);
    if (names.length === 0) throw new SpecError(`${at}.names must not be empty`);
    for (const name of names) {
      if (!/^[a-z0-9_]+$/.test(name)) throw new SpecError(`${at}.names: "${name}" is not a syscall name`);
    }
    const ruleAction = action(call.action, call.errnoRet, `${at}.action`);
    const ruleArgs = args(call.args, `${at}.args`);
    const indexes = ruleArgs.map((arg) => arg.index);
    const repeated = new Set(indexes).size !== indexes.length;
    for (const name of names) {
      if (ruleAction === ACTIONS.SCMP_ACT_NOTIFY && NOT_NOTIFIABLE[name]) throw new SpecError(`${at}: ${NOT_NOTIFIABLE[name]}`);
      if (repeated) for (const arg of ruleArgs) rules.push({ name, action: ruleAction, args: [arg] });
      else rules.push({ name, action: ruleAction, args: ruleArgs });
    }
  });
  const filter: SeccompFilter = { defaultAction, architectures, flags, rules };
  if (rules.some((rule) => rule.action === ACTIONS.SCMP_ACT_NOTIFY)) {
    filter.listener = listener(value.listenerPath, value.listenerMetadata, where);
  } else if (flags & FLAGS.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV!) {
    throw new SpecError(`${where}.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a listener: a rule whose action is SCMP_ACT_NOTIFY`);
  }
  return filter;
}

/** listenerPath and listenerMetadata, for a filter with SCMP_ACT_NOTIFY rules. */
function listener(path: unknown, metadata: unknown, where: string): { path: string; metadata: string } {
  if (path === undefined || path === null || path === '') throw new SpecError(`${where}.listenerPath is not set: SCMP_ACT_NOTIFY needs a seccomp agent to notify`);
  if (typeof path !== 'string' || !isAbsolute(path)) throw new SpecError(`${where}.listenerPath must be an absolute path, not ${JSON.stringify(path)}`);
  if (metadata !== undefined && metadata !== null && typeof metadata !== 'string') throw new SpecError(`${where}.listenerMetadata must be a string`);
  return { path, metadata: metadata ?? '' };
}
