// config.json for an unpacked image, on top of the project's default spec: the image's entrypoint, cmd, env,
// working directory and user (resolved in the rootfs's /etc/passwd and /etc/group, as runc and docker do), its
// labels as annotations, the terminal off unless asked.
import { posix } from 'node:path';
import { defaultSpec } from '../oci/default-spec.js';
import type { Spec, User } from '../oci/spec.js';
import type { ImageConfig } from './image-config.js';
import { readRootfsFile } from './rootfs-file.js';
import { ImageConfigError } from '../errors/errors.js';

export interface SpecOverrides {
  args?: string[];
  entrypoint?: string[];
  env?: string[];
  cwd?: string;
  user?: string;
  terminal?: boolean;
}

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** The annotation containerd and CRI use for the image's stop signal. */
export const STOP_SIGNAL_ANNOTATION = 'org.opencontainers.image.stopSignal';

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Bigger user databases are refused: real ones are kilobytes. */
const MAX_DATABASE_BYTES = 4 * 1024 * 1024;

/** The lines of a colon-separated database inside the rootfs, [] when it is absent. */
async function readDatabase(rootfs: string, name: string): Promise<string[][]> {
  const content = readRootfsFile(rootfs, ['etc', name], MAX_DATABASE_BYTES);
  if (!content) return [];
  return content
    .toString('utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => line.split(':'));
}

const isId = (value: string) => /^\d+$/.test(value);

async function passwd(rootfs: string): Promise<PasswdEntry[]> {
  return (await readDatabase(rootfs, 'passwd'))
    .filter((f) => f.length >= 4 && isId(f[2]!) && isId(f[3]!))
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/' }));
}

async function groups(rootfs: string): Promise<GroupEntry[]> {
  return (await readDatabase(rootfs, 'group'))
    .filter((f) => f.length >= 3 && isId(f[2]!))
    .map((f) => ({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }));
}

export interface ResolvedUser extends User {
  home: string;
}

/**
 * Resolves `user`, `uid`, `user:group`, `uid:gid` (and mixes) like runc's libcontainer/user: a name must exist in
 * /etc/passwd (a group name in /etc/group); a number need not. Supplementary groups come from /etc/group only
 * when no group was given.
 */
export async function resolveUser(rootfs: string, spec: string): Promise<ResolvedUser> {
  const [userPart = '', groupPart, ...extra] = spec.split(':');
  if (extra.length > 0) throw new ImageConfigError(`user "${spec}" is not user, user:group, uid or uid:gid`);
  const users = await passwd(rootfs);
  const wantedUser = userPart === '' ? '0' : userPart;
  const account = isId(wantedUser) ? users.find((u) => u.uid === Number(wantedUser)) : users.find((u) => u.name === wantedUser);
  if (!account && !isId(wantedUser)) throw new ImageConfigError(`user "${wantedUser}" is not in the image's /etc/passwd`);
  const uid = account?.uid ?? Number(wantedUser);
  const user: ResolvedUser = { uid, gid: account?.gid ?? 0, home: account?.home ?? '/' };
  const groupList = await groups(rootfs);
  if (groupPart !== undefined && groupPart !== '') {
    const group = isId(groupPart) ? { gid: Number(groupPart) } : groupList.find((g) => g.name === groupPart);
    if (!group) throw new ImageConfigError(`group "${groupPart}" is not in the image's /etc/group`);
    user.gid = group.gid;
    return user;
  }
  if (account) {
    const additional = groupList.filter((g) => g.members.includes(account.name) && g.gid !== user.gid).map((g) => g.gid);
    if (additional.length > 0) user.additionalGids = [...new Set(additional)];
  }
  return user;
}

function envKey(entry: string): string {
  const eq = entry.indexOf('=');
  return eq === -1 ? entry : entry.slice(0, eq);
}

/** Later entries replace earlier ones with the same name, keeping the first one's place. */
function mergeEnv(...lists: string[][]): string[] {
  const merged = new Map<string, string>();
  for (const entry of lists.flat()) merged.set(envKey(entry), entry);
  return [...merged.values()];
}

export function imageArgs(config: ImageConfig, overrides: SpecOverrides = {}): string[] {
  const entrypoint = overrides.entrypoint ?? config.config?.Entrypoint ?? [];
  // As with docker: a new entrypoint drops the image's Cmd, which was written for the old one.
  const cmd = overrides.args ?? (overrides.entrypoint ? [] : (config.config?.Cmd ?? []));
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new ImageConfigError('the image has neither Entrypoint nor Cmd: give a command');
  return args;
}

export async function specFromImageConfig(config: ImageConfig, rootfs: string, overrides: SpecOverrides = {}): Promise<Spec> {
  const spec = defaultSpec();
  const image = config.config ?? {};
  const terminal = overrides.terminal ?? false;
  const user = await resolveUser(rootfs, overrides.user ?? image.User ?? '');
  const imageEnv = image.Env ?? [];
  const defaults = [DEFAULT_PATH, `HOME=${user.home}`, ...(terminal ? ['TERM=xterm'] : [])].filter(
    (entry) => !imageEnv.some((e) => envKey(e) === envKey(entry)),
  );
  const { home: _home, ...processUser } = user;
  spec.process = {
    ...spec.process!,
    terminal,
    user: processUser,
    args: imageArgs(config, overrides),
    env: mergeEnv(defaults, imageEnv, overrides.env ?? []),
    cwd: posix.resolve('/', overrides.cwd ?? (image.WorkingDir || '/')),
  };
  spec.root = { path: 'rootfs', readonly: false };
  const annotations: Record<string, string> = { ...(image.Labels ?? {}) };
  if (image.StopSignal) annotations[STOP_SIGNAL_ANNOTATION] = image.StopSignal;
  if (Object.keys(annotations).length > 0) spec.annotations = annotations;
  return spec;
}
