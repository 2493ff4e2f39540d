import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { KNOWN_CAPABILITIES } from './capabilities.js';
import { validateResources } from './linux-resources.js';
import { KNOWN_RLIMITS } from './rlimits.js';
import { seccompFilter } from './seccomp.js';
import type { HookName, Process, Spec } from './spec.js';
import { SpecError } from '../errors/errors.js';

const HOOK_NAMES: HookName[] = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];
// No time namespace: runbox cannot make one (runc 1.1 refuses it too), and a type it cannot make is refused, not dropped.
const NAMESPACE_TYPES = new Set(['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup']);

/**
 * Reads BUNDLE/config.json and checks what runc checks before it creates anything, with runc's wording, so a
 * bad bundle fails before a single process or file exists. Returns the spec with root.path made absolute.
 */
export function loadSpec(bundle: string): Spec {
  const path = join(bundle, 'config.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new SpecError(`JSON specification file config.json not found in bundle ${bundle}`);
    throw new SpecError(`cannot read ${path}: ${(error as Error).message}`);
  }
  let spec: Spec;
  try {
    spec = JSON.parse(text) as Spec;
  } catch (error) {
    throw new SpecError(`invalid JSON in ${path}: ${(error as Error).message}`);
  }
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new SpecError(`${path} does not hold a JSON object`);
  validateSpec(spec, bundle);
  return spec;
}

export function validateSpec(spec: Spec, bundle: string): void {
  if (typeof spec.ociVersion !== 'string' || !/^1\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.test(spec.ociVersion)) {
    throw new SpecError(`invalid ociVersion "${String(spec.ociVersion)}": want a 1.x.y runtime-spec version`);
  }
  if (!spec.root || typeof spec.root.path !== 'string' || spec.root.path === '') throw new SpecError('root.path must be set');
  spec.root.path = resolve(bundle, spec.root.path);
  let rootStat;
  try {
    rootStat = statSync(spec.root.path);
  } catch (error) {
    throw new SpecError(`invalid rootfs: stat ${spec.root.path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (error as Error).message}`);
  }
  if (!rootStat.isDirectory()) throw new SpecError(`invalid rootfs: ${spec.root.path} is not a directory`);

  if (!spec.process) throw new SpecError('process property must not be empty');
  validateProcess(spec.process);

  for (const name of HOOK_NAMES) {
    for (const hook of spec.hooks?.[name] ?? []) {
      if (typeof hook.path !== 'string' || !isAbsolute(hook.path)) throw new SpecError(`hooks.${name}: path "${hook.path}" must be absolute`);
      if (hook.timeout !== undefined && !(Number.isInteger(hook.timeout) && hook.timeout > 0)) {
        throw new SpecError(`hooks.${name}: timeout of ${hook.path} must be a positive number of seconds`);
      }
    }
  }

  for (const mount of spec.mounts ?? []) {
    if (typeof mount.destination !== 'string' || mount.destination === '') throw new SpecError('mounts: destination must be set');
    if (!isAbsolute(mount.destination)) mount.destination = `/${mount.destination}`;
  }

  const seen = new Set<string>();
  for (const ns of spec.linux?.namespaces ?? []) {
    if (!NAMESPACE_TYPES.has(ns.type)) throw new SpecError(`namespace type "${ns.type}" is not supported`);
    if (seen.has(ns.type)) throw new SpecError(`namespace type "${ns.type}" is listed twice`);
    seen.add(ns.type);
    if (ns.path !== undefined && !isAbsolute(ns.path)) throw new SpecError(`namespace ${ns.type}: path "${ns.path}" must be absolute`);
  }
  if (seen.has('user') && !(spec.linux?.uidMappings?.length && spec.linux?.gidMappings?.length)) {
    if (!spec.linux?.namespaces?.find((ns) => ns.type === 'user')?.path) {
      throw new SpecError('user namespace requires uidMappings and gidMappings');
    }
  }
  if (spec.hostname && !seen.has('uts')) throw new SpecError('unable to set hostname without a new UTS namespace');
  // Without a mount namespace the container shares the runtime's (runtime-spec: a type not listed is inherited).
  if (!seen.has('mount') && (spec.linux?.maskedPaths?.length || spec.linux?.readonlyPaths?.length)) {
    throw new SpecError('unable to restrict sys entries without a private MNT namespace');
  }
  if (spec.linux?.cgroupsPath !== undefined && typeof spec.linux.cgroupsPath !== 'string') throw new SpecError('linux.cgroupsPath must be a string');
  validateResources(spec.linux?.resources);
  seccompFilter(spec.linux?.seccomp);
}

/** What runc checks of a process: config.json's, or the one `exec --process` reads from a file. */
export function validateProcess(process: Process): void {
  if (!Array.isArray(process.args) || process.args.length === 0) throw new SpecError('args must not be empty');
  if (process.args.some((arg) => typeof arg !== 'string')) throw new SpecError('process.args must be strings');
  if (typeof process.cwd !== 'string' || !isAbsolute(process.cwd)) throw new SpecError('cwd property must be an absolute path');
  if (!process.user || !Number.isInteger(process.user.uid) || !Number.isInteger(process.user.gid)) {
    throw new SpecError('process.user.uid and process.user.gid must be integers');
  }
  for (const env of process.env ?? []) {
    if (typeof env !== 'string' || env.indexOf('=') <= 0) throw new SpecError(`invalid environment variable "${env}": want NAME=value`);
  }
  for (const [set, names] of Object.entries(process.capabilities ?? {})) {
    for (const name of names as string[]) {
      if (!KNOWN_CAPABILITIES.includes(name.toUpperCase())) throw new SpecError(`unknown capability "${name}" in process.capabilities.${set}`);
    }
  }
  const seenRlimits = new Set<string>();
  for (const rlimit of process.rlimits ?? []) {
    if (!KNOWN_RLIMITS.includes(rlimit.type)) throw new SpecError(`unknown rlimit type "${rlimit.type}" in process.rlimits`);
    if (seenRlimits.has(rlimit.type)) throw new SpecError(`rlimit "${rlimit.type}" may not be set twice`);
    seenRlimits.add(rlimit.type);
    if (rlimit.soft > rlimit.hard) throw new SpecError(`rlimit "${rlimit.type}": soft limit ${rlimit.soft} exceeds hard limit ${rlimit.hard}`);
  }
}
