import { KNOWN_CAPABILITIES } from './capabilities.js';
import { seccompFeatures } from './seccomp.js';

const MOUNT_OPTIONS = [
  'async', 'atime', 'bind', 'defaults', 'dev', 'diratime', 'dirsync', 'exec', 'lazytime', 'loud', 'mand', 'noatime',
  'nodev', 'nodiratime', 'noexec', 'nolazytime', 'nomand', 'norelatime', 'nostrictatime', 'nosuid', 'nosymfollow',
  'private', 'rbind', 'relatime', 'remount', 'ro', 'rprivate', 'rshared', 'rslave', 'runbindable', 'rw', 'shared',
  'silent', 'slave', 'strictatime', 'suid', 'symfollow', 'sync', 'unbindable',
];

const CGROUPS_APPLIED = 'cgroupfs (v1, or v2 where unified): linux.cgroupsPath; memory limit, reservation, swap, swappiness, '
  + 'disableOOMKiller; cpu shares, quota, period, realtime, cpus, mems; pids limit; blockIO; hugepageLimits; network; rdma; '
  + 'unified (v2); device rules (v1 devices controller, v2 eBPF device program); OOM events; update';

/** The runtime-spec features document (features.md), with what each driver isolates stated as annotations. */
export function features(version: string, drivers: Array<{ name: string; isolation: string; description: string; cgroups?: boolean; seccompNotify?: boolean }>) {
  const annotations: Record<string, string> = { 'io.runbox.version': version };
  for (const driver of drivers) {
    annotations[`io.runbox.driver.${driver.name}.isolation`] = driver.isolation;
    annotations[`io.runbox.driver.${driver.name}.description`] = driver.description;
    annotations[`io.runbox.driver.${driver.name}.cgroups`] = driver.cgroups ? CGROUPS_APPLIED : 'not applied as cgroups';
    annotations[`io.runbox.driver.${driver.name}.seccomp.notify`] = driver.seccompNotify
      ? 'SCMP_ACT_NOTIFY: the listener fd is sent to linux.seccomp.listenerPath on the host'
      : 'SCMP_ACT_NOTIFY refused: the filter is in a kernel whose notifications cannot reach a host process';
  }
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: '1.1.0',
    hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
    mountOptions: MOUNT_OPTIONS,
    linux: {
      namespaces: ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts'],
      capabilities: [...KNOWN_CAPABILITIES],
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false },
      seccomp: seccompFeatures(),
      // Supported (features-linux.md: not a statement about this host): applied where the kernel enforces them.
      apparmor: { enabled: true },
      selinux: { enabled: true },
    },
    annotations,
  };
}
