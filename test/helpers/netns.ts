// A network namespace of a test's own (`ip netns add`, loopback up), removed with the test: what runs in it
// (`nsenter --net`, which leaves the mount namespace alone) has addresses and routes that touch nothing of the
// machine's own network.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { TeardownOwner } from './teardown.js';

export interface NetNamespace {
  name: string;
  /** The bind-mounted namespace file, for nsenter --net=PATH. */
  path: string;
}

function ip(args: string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr.trim()}`);
}

export function createNetns(owner: TeardownOwner): NetNamespace {
  const name = `rbx-${process.pid}-${randomBytes(3).toString('hex')}`;
  ip(['netns', 'add', name]);
  owner.teardown(() => spawnSync('ip', ['netns', 'delete', name]));
  ip(['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, path: `/run/netns/${name}` };
}

/** argv that runs `command` in the namespace (only its network namespace: files and mounts are the caller's). */
export function inNetns(netns: NetNamespace | undefined, command: string, args: string[] = []): [string, string[]] {
  return netns ? ['nsenter', [`--net=${netns.path}`, command, ...args]] : [command, args];
}
