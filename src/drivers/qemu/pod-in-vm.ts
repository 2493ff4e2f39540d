// A Kubernetes pod in one microVM: what the host paths in a pod container's config.json mean in the guest.
// containerd's CRI names the pod's namespaces by host paths (the sandbox task's /proc/PID/ns/…, which is QEMU's
// pid, and the network namespace file CNI set up) and gives every container CRI's files (/etc/hosts,
// /etc/resolv.conf, /etc/hostname), the pod's /dev/shm and its volumes as bind mounts of host paths. In the VM
// the pod's sandbox container holds the pod's ipc, uts and pid namespaces, the guest's own network namespace is
// the pod's network, CRI's files are written into the guest, /dev/shm is a guest directory of the pod's, and host
// directories come over the VM's 9p export (pod-volumes.ts).
import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { SandboxError } from '../../errors/errors.js';
import type { Mount, Spec } from '../../oci/spec.js';
import { UNIT_SEPARATOR, type RecordList } from '../../agent-client/agent-records.js';
import { MS, parseMountOptions } from '../../oci/mount-options.js';
import { GUEST_VOLUMES, VOLUMES_TAG, volumePath } from './pod-volumes.js';
import { isBindMount, refuseSeccompNotify } from './vm-host-resources.js';

export const SANDBOX_ID_ANNOTATION = 'io.kubernetes.cri.sandbox-id';
export const CONTAINER_TYPE_ANNOTATION = 'io.kubernetes.cri.container-type';

/** The largest host file copied into the guest for a bind mount (CRI's files are a few hundred bytes). */
export const GUEST_FILE_LIMIT = 256 * 1024;

/** The /proc/PID/ns/ file of each namespace type. */
const NS_FILES: Record<string, string> = { pid: 'pid', ipc: 'ipc', uts: 'uts', mount: 'mnt', cgroup: 'cgroup', user: 'user', network: 'net' };

export interface PodMember {
  sandboxId: string;
  /** The pod's sandbox (pause) container itself, the first of its VM. */
  isSandbox: boolean;
}

/** The pod a container belongs to, from CRI's annotations; undefined for a container of no pod. */
export function podMember(spec: Spec): PodMember | undefined {
  const sandboxId = spec.annotations?.[SANDBOX_ID_ANNOTATION];
  if (!sandboxId) return undefined;
  return { sandboxId, isSandbox: spec.annotations?.[CONTAINER_TYPE_ANNOTATION] === 'sandbox' };
}

export interface GuestPod {
  /** Pid of the VM on the host: the sandbox task's pid, whose /proc/PID/ns/… CRI names for the pod's namespaces. */
  vmPid: number;
  /** The sandbox container's init in the guest; absent for the sandbox itself. */
  sandboxGuestPid?: number;
}

/** A host directory a container mounts, to be bound into the VM's 9p export as its volume `index`. */
export interface PodVolume {
  index: number;
  source: string;
  readonly: boolean;
}

/**
 * The spec as the guest's agent takes it, the records of what the guest makes first (files, the pod's /dev/shm,
 * the 9p mount) and the host directories to bind into the VM's export; a host resource the VM cannot give (a
 * namespace outside the pod, the host's network, a file too large) is refused, naming it.
 */
export function guestPodSpec(id: string, spec: Spec, pod: PodMember, guest: GuestPod): { spec: Spec; records: RecordList; volumes: PodVolume[] } {
  const refuse = (what: string): never => {
    throw new SandboxError(what, { containerId: id });
  };
  refuseSeccompNotify(id, spec);
  const namespaces = spec.linux?.namespaces ?? [];
  if (!namespaces.some((ns) => ns.type === 'network')) {
    refuse('a microVM cannot give a pod the host\'s network (hostNetwork): the pod\'s network is the VM\'s own');
  }
  const mapped = namespaces.flatMap((ns) => {
    if (!ns.path) return [ns];
    // The guest's own network namespace is the pod's: the VM's interface is connected to the one CNI made.
    if (ns.type === 'network') return [];
    const match = /^\/proc\/(\d+)\/ns\/[a-z_]+$/.exec(ns.path);
    if (!match || Number(match[1]) !== guest.vmPid || guest.sandboxGuestPid === undefined || !NS_FILES[ns.type]) {
      return refuse(`a microVM cannot join the ${ns.type} namespace ${ns.path}: a container of a pod in a VM joins only its pod's namespaces`);
    }
    return [{ ...ns, path: `/proc/${guest.sandboxGuestPid}/ns/${NS_FILES[ns.type]}` }];
  });
  const records: RecordList = [];
  const volumes: PodVolume[] = [];
  const shm = `/sandboxes/${pod.sandboxId}/shm`;
  const mounts = (spec.mounts ?? []).map((mount, index): Mount => {
    if (!isBindMount(mount) || !mount.source) return mount;
    if (mount.source.endsWith(shm) && mount.destination === '/dev/shm') {
      // The pod's shared memory: a directory on the guest's /run tmpfs that every container of the pod binds (a
      // mount cannot be bound from another container's mount namespace).
      const dir = `/run/runbox-shm/${pod.sandboxId}`;
      records.push(['guest_dir', dir]);
      return { ...mount, source: dir };
    }
    let size: number;
    try {
      const stat = statSync(mount.source);
      if (stat.isDirectory()) {
        volumes.push({ index, source: mount.source, readonly: (parseMountOptions(mount.options).flags & MS.RDONLY) !== 0 });
        return { ...mount, source: `${GUEST_VOLUMES}/${volumePath(id, index)}` };
      }
      if (!stat.isFile()) {
        return refuse(`the qemu driver cannot bind-mount ${mount.source} on ${mount.destination} in a microVM: neither a file nor a directory`);
      }
      size = stat.size;
    } catch (error) {
      if (error instanceof SandboxError) throw error;
      return refuse(`cannot read ${mount.source} for the mount on ${mount.destination}: ${(error as Error).message}`);
    }
    if (size > GUEST_FILE_LIMIT) {
      refuse(`the host file ${mount.source} for ${mount.destination} is larger than the ${GUEST_FILE_LIMIT} bytes a microVM copies in`);
    }
    // CRI's files: a copy in the guest, taken at create.
    const path = `/run/runbox-files/${id}/${index}-${basename(mount.source)}`;
    records.push(['guest_file', `${path}${UNIT_SEPARATOR}${readFileSync(mount.source).toString('hex')}`]);
    return { ...mount, source: path };
  });
  if (volumes.length) records.push(['volumes', VOLUMES_TAG]);
  return { spec: { ...spec, mounts, linux: { ...spec.linux, namespaces: mapped } }, records, volumes };
}
