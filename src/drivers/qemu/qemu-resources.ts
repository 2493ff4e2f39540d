// The size of a microVM from config.json's linux.resources: vCPUs from the CPU quota (or the cpuset), memory
// from the memory limit plus what the guest kernel keeps for itself. A pod's VM is sized from the pod: the sum of
// its containers' limits, which containerd's CRI gives the sandbox's config.json as annotations (kubelet sends
// it in the PodSandboxConfig since Kubernetes 1.23).
import { availableParallelism } from 'node:os';
import type { Spec } from '../../oci/spec.js';
import { SpecError } from '../../errors/errors.js';

/**
 * The smallest VM: the Debian cloud kernel reserves ~46 MiB and boots alone in 72 MiB, but with the agent's ports,
 * disk and cgroup hierarchies it can panic ("System is deadlocked on memory") at 104 MiB under TCG; 128 MiB, the
 * default, has always booted.
 */
export const GUEST_MIN_MEMORY_MIB = 128;
/** What the guest kernel keeps for itself: a memory limit is the container's, so the VM gets this much more. */
export const GUEST_KERNEL_MIB = 48;
export const DEFAULT_MEMORY_MIB = 128;
export const DEFAULT_VCPUS = 1;

export interface VmResources {
  vcpus: number;
  memoryMib: number;
}

function cpusetSize(cpus: string): number {
  let count = 0;
  for (const part of cpus.split(',')) {
    const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!match) throw new SpecError(`linux.resources.cpu.cpus "${cpus}" is not a cpuset list`);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first) throw new SpecError(`linux.resources.cpu.cpus "${cpus}" has a range that runs backwards`);
    count += last - first + 1;
  }
  return count;
}

function positive(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}

/** CRI's annotations of a pod sandbox's config.json with the sum of the pod's containers' resources. */
export const POD_RESOURCE_ANNOTATIONS = {
  memory: 'io.kubernetes.cri.sandbox-memory',
  cpuQuota: 'io.kubernetes.cri.sandbox-cpu-quota',
  cpuPeriod: 'io.kubernetes.cri.sandbox-cpu-period',
} as const;

function annotatedNumber(spec: Spec, name: string): number | undefined {
  const value = spec.annotations?.[name];
  return value === undefined ? undefined : positive(Number(value));
}

/** A pod's resources as the CRI annotations give them, in linux.resources' shape; undefined without them. */
function podResources(spec: Spec): { cpu?: { quota?: number; period?: number }; memory?: { limit?: number } } | undefined {
  const memory = annotatedNumber(spec, POD_RESOURCE_ANNOTATIONS.memory);
  const quota = annotatedNumber(spec, POD_RESOURCE_ANNOTATIONS.cpuQuota);
  if (memory === undefined && quota === undefined) return undefined;
  return { cpu: { quota, period: annotatedNumber(spec, POD_RESOURCE_ANNOTATIONS.cpuPeriod) }, memory: { limit: memory } };
}

export function vmResources(spec: Spec): VmResources {
  const resources = (podResources(spec) ?? spec.linux?.resources) as
    | { cpu?: { quota?: unknown; period?: unknown; cpus?: unknown }; memory?: { limit?: unknown } }
    | undefined;
  let vcpus = DEFAULT_VCPUS;
  const quota = positive(resources?.cpu?.quota);
  if (quota !== undefined) {
    vcpus = Math.ceil(quota / (positive(resources?.cpu?.period) ?? 100_000));
  } else if (typeof resources?.cpu?.cpus === 'string' && resources.cpu.cpus.trim()) {
    vcpus = cpusetSize(resources.cpu.cpus);
  }
  // More vCPUs than host CPUs only adds contention (and TCG threads).
  vcpus = Math.max(1, Math.min(vcpus, availableParallelism()));
  const limit = positive(resources?.memory?.limit);
  const memoryMib = limit === undefined
    ? DEFAULT_MEMORY_MIB
    : Math.max(GUEST_MIN_MEMORY_MIB, Math.ceil(limit / 2 ** 20) + GUEST_KERNEL_MIB);
  return { vcpus, memoryMib };
}
