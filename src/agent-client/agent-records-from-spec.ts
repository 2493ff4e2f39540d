// Translates an OCI spec into the agent's create/exec records: every name resolved to the number the kernel
// takes, every path made absolute, so that the agent never parses config.json.
import { isAbsolute, resolve } from 'node:path';
import { capabilityMask } from '../oci/capabilities.js';
import { parseMountOptions, rootfsPropagation } from '../oci/mount-options.js';
import { rlimitNumber } from '../oci/rlimits.js';
import { seccompFilter } from '../oci/seccomp.js';
import type { Hook, Process, Spec } from '../oci/spec.js';
import { UNIT_SEPARATOR as US, type RecordList } from './agent-records.js';
import type { StdioMode } from '../sandbox/driver.js';
import { seccompRecords } from './seccomp-records.js';

const NAMESPACE_NAMES: Record<string, string> = {
  pid: 'pid', network: 'net', mount: 'mount', ipc: 'ipc', uts: 'uts', user: 'user', cgroup: 'cgroup',
};

// The devices every container gets (runtime-spec config-linux.md "Default Devices").
const DEFAULT_DEVICES: Array<[string, number, number]> = [
  ['/dev/null', 1, 3], ['/dev/zero', 1, 5], ['/dev/full', 1, 7],
  ['/dev/random', 1, 8], ['/dev/urandom', 1, 9], ['/dev/tty', 5, 0],
];

const UNLIMITED = '18446744073709551615';

function limit(value: number): string {
  return value < 0 || value >= Number.MAX_SAFE_INTEGER ? UNLIMITED : String(Math.floor(value));
}

export function processRecords(process: Process, stdio: StdioMode, consoleSocket?: string): RecordList {
  const records: RecordList = [];
  for (const arg of process.args ?? []) records.push(['arg', arg]);
  for (const env of process.env ?? []) records.push(['env', env]);
  records.push(['cwd', process.cwd], ['uid', String(process.user.uid)], ['gid', String(process.user.gid)]);
  for (const gid of process.user.additionalGids ?? []) records.push(['agid', String(gid)]);
  if (process.user.umask !== undefined) records.push(['umask', process.user.umask.toString(8)]);
  for (const rlimit of process.rlimits ?? []) {
    records.push(['rlimit', `${rlimitNumber(rlimit.type)} ${limit(rlimit.soft)} ${limit(rlimit.hard)}`]);
  }
  const caps = process.capabilities ?? {};
  records.push(
    ['cap_bounding', capabilityMask(caps.bounding, 'bounding')],
    ['cap_effective', capabilityMask(caps.effective, 'effective')],
    ['cap_permitted', capabilityMask(caps.permitted, 'permitted')],
    ['cap_inheritable', capabilityMask(caps.inheritable, 'inheritable')],
    ['cap_ambient', capabilityMask(caps.ambient, 'ambient')],
  );
  if (process.noNewPrivileges) records.push(['no_new_privileges', '1']);
  if (process.oomScoreAdj !== undefined) records.push(['oom_score_adj', String(process.oomScoreAdj)]);
  if (process.terminal) {
    records.push(['terminal', '1']);
    if (consoleSocket) records.push(['console_socket', consoleSocket]);
    if (process.consoleSize) {
      records.push(['console_width', String(process.consoleSize.width)], ['console_height', String(process.consoleSize.height)]);
    }
  }
  records.push(['stdio', stdio]);
  return records;
}

function hookRecords(phase: string, hooks: Hook[] | undefined): RecordList {
  const records: RecordList = [];
  for (const hook of hooks ?? []) {
    records.push(['hook', phase], ['hook_path', hook.path]);
    for (const arg of hook.args ?? [hook.path]) records.push(['hook_arg', arg]);
    for (const env of hook.env ?? []) records.push(['hook_env', env]);
    if (hook.timeout !== undefined) records.push(['hook_timeout', String(hook.timeout)]);
  }
  return records;
}

/** runc's label.FormatMountLabel: linux.mountLabel as the context of the filesystems it mounts itself. */
function labelled(data: string, type: string, flags: number, mountLabel: string | undefined): string {
  if (!mountLabel || flags & 0x1000 || ['bind', 'proc', 'sysfs', 'mqueue', 'cgroup', 'cgroup2'].includes(type)) return data;
  return [data, `context="${mountLabel}"`].filter(Boolean).join(',');
}

/** `bundle` resolves relative bind-mount sources, as the runtime-spec says. */
export function createRecords(id: string, spec: Spec, bundle: string, stdio: StdioMode, consoleSocket?: string): RecordList {
  const linux = spec.linux ?? {};
  const records: RecordList = [['op', 'create'], ['id', id], ['rootfs', spec.root!.path]];
  if (spec.root!.readonly) records.push(['readonly_rootfs', '1']);
  for (const ns of linux.namespaces ?? []) {
    const name = NAMESPACE_NAMES[ns.type];
    if (!name) continue;
    records.push(['ns', ns.path ? `${name}${US}${ns.path}` : name]);
  }
  for (const m of linux.uidMappings ?? []) records.push(['uid_map', `${m.containerID} ${m.hostID} ${m.size}`]);
  for (const m of linux.gidMappings ?? []) records.push(['gid_map', `${m.containerID} ${m.hostID} ${m.size}`]);
  if (spec.hostname) records.push(['hostname', spec.hostname]);
  if (spec.domainname) records.push(['domainname', spec.domainname]);
  records.push(['rootfs_propagation', String(rootfsPropagation(linux.rootfsPropagation))]);
  for (const mount of spec.mounts ?? []) {
    const options = parseMountOptions(mount.options);
    const type = mount.type ?? (options.flags & 0x1000 ? 'bind' : '');
    let source = mount.source ?? '';
    if (type === 'bind' || options.flags & 0x1000) {
      if (source && !isAbsolute(source)) source = resolve(bundle, source);
    }
    records.push(['mount', [mount.destination, source, type, options.flags, options.propagation, labelled(options.data, type, options.flags, linux.mountLabel)].join(US)]);
  }
  const devices = new Map<string, string>();
  for (const [path, major, minor] of DEFAULT_DEVICES) devices.set(path, [path, 'c', major, minor, '666', 0, 0].join(US));
  for (const d of linux.devices ?? []) {
    const type = d.type === 'u' ? 'c' : d.type;
    devices.set(d.path, [d.path, type, d.major ?? 0, d.minor ?? 0, (d.fileMode ?? 0o666).toString(8), d.uid ?? 0, d.gid ?? 0].join(US));
  }
  for (const device of devices.values()) records.push(['device', device]);
  for (const path of linux.maskedPaths ?? []) records.push(['masked', path]);
  for (const path of linux.readonlyPaths ?? []) records.push(['readonly_path', path]);
  for (const [key, value] of Object.entries(linux.sysctl ?? {})) records.push(['sysctl', `${key}=${value}`]);
  records.push(...seccompRecords(seccompFilter(linux.seccomp), { id, bundle, annotations: spec.annotations }));
  records.push(...hookRecords('create_container', spec.hooks?.createContainer));
  records.push(...hookRecords('start_container', spec.hooks?.startContainer));
  records.push(...processRecords(spec.process!, stdio, consoleSocket));
  return records;
}
