// What a microVM cannot give a container: anything of the host's. Its container runs under the guest's own
// kernel, so a host namespace cannot be joined, and a host path cannot be bind-mounted (the VM sees no host
// files), and a seccomp filter's notifications cannot reach a seccomp agent on the host. Such a config is refused
// before a VM is started, saying so, instead of failing in the guest with a message about the guest (`open the
// ipc namespace /proc/…/ns/ipc: no such file or directory`).
import { MS, parseMountOptions } from '../../oci/mount-options.js';
import type { Mount, Spec } from '../../oci/spec.js';
import { SandboxError } from '../../errors/errors.js';

export function isBindMount(mount: Mount): boolean {
  return mount.type === 'bind' || (parseMountOptions(mount.options).flags & MS.BIND) !== 0;
}

/**
 * A pod's containers are mapped onto the VM instead (pod-in-vm.ts), which refuses what it cannot map; the
 * seccomp listener is refused for every container.
 */
export function refuseHostResources(id: string, spec: Spec): void {
  refuseSeccompNotify(id, spec);
  for (const ns of spec.linux?.namespaces ?? []) {
    if (ns.path) {
      throw new SandboxError(
        `a microVM cannot join the host's ${ns.type} namespace ${ns.path}: the container runs under the VM's own kernel ` +
        `(leave out linux.namespaces[].path, or use the emulated driver)`,
        { containerId: id },
      );
    }
  }
  for (const mount of spec.mounts ?? []) {
    if (isBindMount(mount)) {
      throw new SandboxError(
        `the qemu driver cannot bind-mount the host path ${mount.source ?? ''} on ${mount.destination} in a microVM: ` +
        'it gives only mounts made in the guest, of kinds that need nothing from the host (tmpfs, proc, sysfs, devpts, mqueue, cgroup…)',
        { containerId: id },
      );
    }
  }
}

export function refuseSeccompNotify(id: string, spec: Spec): void {
  const seccomp = spec.linux?.seccomp as { syscalls?: unknown; listenerPath?: unknown } | undefined;
  if (Array.isArray(seccomp?.syscalls) && seccomp.syscalls.some((call) => (call as { action?: unknown } | null)?.action === 'SCMP_ACT_NOTIFY')) {
    throw new SandboxError(
      `a microVM cannot hand its seccomp listener to the seccomp agent at ${String(seccomp.listenerPath ?? '(no listenerPath)')}: ` +
      'the filter is in the VM\'s own kernel, whose notifications cannot reach a host process (use SCMP_ACT_NOTIFY with the emulated driver)',
      { containerId: id },
    );
  }
}
