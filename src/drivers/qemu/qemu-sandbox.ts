// A container's microVM as a Sandbox: the agent in the guest does the work (AgentSandbox); what differs is where
// the container's rootfs is (a disk the agent mounts) and that the VM powers off once the container's init has
// exited, leaving its exit status in a host file. ExitedSandbox answers from that file afterwards.
import { readFileSync } from 'node:fs';
import type { LinuxResources } from '../../oci/linux-resources.js';
import type { AgentClient } from '../../agent-client/agent-client.js';
import { UNIT_SEPARATOR, type RecordList } from '../../agent-client/agent-records.js';
import { AgentSandbox } from '../../agent-client/agent-sandbox.js';
import type { CgroupMode } from '../../agent-client/cgroup-records.js';
import type { LsmSupport } from '../../agent-client/lsm-records.js';
import { Errno } from '../../errors/errno.js';
import { SandboxError } from '../../errors/errors.js';
import {
  type ContainerConfig, type ExecConfig, type ExitStatus, type ProcessOutput, type ProcessStatus, type RunningProcess,
  type Sandbox, type SandboxHandle, type Stats,
} from '../../sandbox/driver.js';
import { vmFiles } from './qemu-command.js';
import { guestPodSpec, podMember, type PodVolume } from './pod-in-vm.js';
import { bindVolume, unbindVolumes } from './pod-volumes.js';
import { appendToDisk } from './rootfs-image.js';
import { podNetworkRecords, type PodNetwork } from './pod-network.js';
import { refuseHostResources } from './vm-host-resources.js';
import { defaultSpec } from '../../oci/default-spec.js';

export interface QemuHandle extends SandboxHandle {
  /** 'qemu', or the name of a driver built on it. */
  driver: string;
  pid: number;
  startTime: string;
  dir: string;
  agentPorts: number;
  accel: 'kvm' | 'tcg';
  /** How the rootfs disk is formatted, for the agent's mount. */
  rootfsFstype: string;
  /** The template (qemu-template.ts) the VM was restored from; absent when it booted its kernel. */
  template?: string;
  /** A pod's network namespace, where the VM's tap is (pod-network.ts). */
  podNetns?: string;
}

/** What the VM holds for the first container created in it, in the process that booted it. */
export interface FirstContainer {
  /** The disk's first image (the bundle the VM was booted for). */
  bootImage: boolean;
  /** The pod's network, which the first container's create configures in the guest (still being read, for a VM
   * taken from the pool: moveTapIn). */
  network?: PodNetwork | Promise<PodNetwork>;
  /** The host end of the pod's network while it is being connected: the first container's create waits for it. */
  connected?: Promise<void>;
}

/** Where the container's rootfs is in the guest (the overlay the agent mounts over the disk). */
export function guestRootfs(id: string): string {
  return `/run/runbox/${id}/rootfs`;
}

/** The guest's block device of the rootfs disk: the only virtio-blk device. */
export const ROOTFS_DEVICE = '/dev/vda';

/**
 * The exit status the agent left in the exit file (a line `STATUS EXITED_AT_NS ID` per container init that
 * exited) for container `id`, if its init has exited.
 */
export function recordedExit(handle: QemuHandle, id: string): ExitStatus | undefined {
  let text: string;
  try {
    text = readFileSync(vmFiles(handle.dir).exit, 'utf8');
  } catch {
    return undefined;
  }
  for (const match of text.matchAll(/^(\d+) (\d+) (.+)\n/gm)) {
    if (match[3] === id) return { exitStatus: Number(match[1]), exitedAt: new Date(Number(BigInt(match[2]!) / 1_000_000n)) };
  }
  return undefined;
}

/** A pty made in the guest cannot be handed to a host process: only a relayed one (a foreground -t) works. */
function refuseConsoleSocket(id: string): never {
  throw new SandboxError(`the qemu driver cannot pass the guest's pty over --console-socket; use a foreground run or exec with -t`, { containerId: id });
}

export class QemuSandbox extends AgentSandbox {
  /** What a create adds to the agent's request beyond the spec's: the rootfs image, the files a pod copies in. */
  protected readonly guestRecords = new Map<string, RecordList>();
  /** Appends to the disk, one at a time. */
  private appending: Promise<unknown> = Promise.resolve();

  constructor(
    override readonly handle: QemuHandle,
    client: AgentClient,
    onDestroy: () => Promise<void>,
    /** Resolves once QEMU has exited (or a short while has passed). */
    private readonly vmGone: () => Promise<void>,
    private first: FirstContainer = { bootImage: false },
  ) {
    // The guest agent applies linux.resources in the guest's cgroup v1 hierarchies (guest-init.c mounts them).
    super(handle, client, onDestroy, 'v1');
  }

  /** The guest kernel has no AppArmor policy and no SELinux policy loaded. */
  protected override lsm(): LsmSupport {
    return { appArmor: 'the qemu driver\'s guest has no AppArmor policy loaded', selinux: 'the qemu driver\'s guest has no SELinux policy loaded' };
  }

  /** cpu.cpus and cpu.mems name host CPUs and nodes: in the VM they are its vCPU count (qemu-resources.ts). */
  protected override resourceRecords(resources: LinuxResources | undefined, mode: CgroupMode): RecordList {
    return super.resourceRecords(resources, mode).filter(([, value]) => !value.startsWith(`cpuset${UNIT_SEPARATOR}`));
  }

  /** Where the container's rootfs is mounted in the guest. */
  protected rootfsInGuest(id: string): string {
    return guestRootfs(id);
  }

  protected override createRequest(config: ContainerConfig): RecordList {
    if (config.consoleSocket) refuseConsoleSocket(config.id);
    if (!podMember(config.spec)) refuseHostResources(config.id, config.spec);
    const root = { ...config.spec.root!, path: this.rootfsInGuest(config.id) };
    return [...super.createRequest({ ...config, spec: { ...config.spec, root } }), ...(this.guestRecords.get(config.id) ?? [])];
  }

  /**
   * Runs a throwaway container to its end in a VM that no container has had yet (a pooled VM, vm-reserve.ts), from
   * the image at the start of its disk: under TCG, the guest kernel's code that a container's create and start run
   * is translated here once instead of on a pod's critical path. Its end does not power the VM off (`transient`);
   * the next container's image goes after it in the disk.
   */
  async warmUp(image: { offset: number; size: number }, args: string[]): Promise<void> {
    const id = 'runbox-warm-up';
    const base = defaultSpec();
    const spec = { ...base, process: { ...base.process!, terminal: false, args }, root: { path: '/', readonly: true } };
    // Through a loop device over its range, as every pod container's image is mounted (rootfsImage).
    const device = [ROOTFS_DEVICE, this.handle.rootfsFstype, image.offset, image.size].join(UNIT_SEPARATOR);
    // The NIC comes up too (net_up): filling its receive buffers is TCG work a pod's network would wait for.
    this.guestRecords.set(id, [['rootfs_image', device], ['transient', '1'], ['net_up', '1']]);
    try {
      await super.createContainer({ id, bundle: '/', spec, stdio: 'null', finish: true });
      await this.startContainer(id);
      const { exitStatus } = await this.wait(id);
      await this.deleteContainer(id);
      if (exitStatus !== 0) throw new SandboxError(`the microVM's warm-up container exited with status ${exitStatus}`);
    } finally {
      this.guestRecords.delete(id);
    }
  }

  /**
   * Where the container's rootfs image is in the disk: the first container's is the one the VM was booted with;
   * each later one (a pod's containers) is built now and appended to the disk, which the guest reads through a
   * loop device over its range.
   */
  private async rootfsImage(rootfsDir: string): Promise<string> {
    const device = `${ROOTFS_DEVICE}${UNIT_SEPARATOR}${this.handle.rootfsFstype}`;
    if (this.first.bootImage) {
      this.first = { bootImage: false };
      return device;
    }
    const appended = this.appending.then(() => appendToDisk(this.handle.dir, rootfsDir));
    this.appending = appended.catch(() => {});
    const { offset, size } = await appended;
    return [device, offset, size].join(UNIT_SEPARATOR);
  }

  /** The guest pid of a container's init (a pod's sandbox, whose namespaces its other containers join). */
  private async guestInitPid(id: string): Promise<number> {
    const init = (await super.processes(id)).find((process) => !process.execId && process.status !== 'stopped');
    if (!init) throw new SandboxError(`the pod's sandbox container ${id} is not running in this microVM`);
    return init.pid;
  }

  /** The guest's agent cannot reach a host process: an exec's `inherit` is the guest agent's own stdio. */
  protected override callerStdioRecords(): RecordList {
    return [];
  }

  override async exec(config: ExecConfig, output?: ProcessOutput): Promise<RunningProcess> {
    if (config.consoleSocket) refuseConsoleSocket(config.containerId);
    return super.exec(config, output);
  }

  /**
   * QEMU never ends with its caller: a booting guest with nobody attached powers itself off, and a clone left
   * waiting for its restore is what abandonedBoot ends.
   */
  override async recorded(): Promise<void> {}

  /**
   * The host sees the VM, not the processes in it: the container's pid is QEMU's, which lives as long as it. A
   * pod's container has its host paths mapped onto the VM first (pod-in-vm.ts).
   */
  override async createContainer(config: ContainerConfig, output?: ProcessOutput): Promise<RunningProcess> {
    let guest = config;
    const records: RecordList = [];
    let volumes: PodVolume[] = [];
    const pod = podMember(config.spec);
    if (pod) {
      const sandboxGuestPid = pod.isSandbox ? undefined : await this.guestInitPid(pod.sandboxId);
      const mapped = guestPodSpec(config.id, config.spec, pod, { vmPid: this.handle.pid, sandboxGuestPid });
      guest = { ...config, spec: mapped.spec };
      records.push(...mapped.records);
      volumes = mapped.volumes;
    } else {
      refuseHostResources(config.id, config.spec);
    }
    // The image goes into the disk while the pod's network (the first container's) is read.
    const { network } = this.first;
    const image = this.rootfsImage(config.spec.root!.path);
    image.catch(() => {});
    if (network) records.push(...podNetworkRecords(await network));
    try {
      records.push(['rootfs_image', await image]);
    } catch (error) {
      throw new SandboxError(`cannot add the container's rootfs to the microVM: ${(error as Error).message}`, { containerId: config.id });
    }
    this.guestRecords.set(config.id, records);
    try {
      for (const volume of volumes) bindVolume(this.handle.dir, config.id, volume.index, volume.source, volume.readonly);
      const created = await super.createContainer(guest, output);
      // The pod's network is the first container's to configure, once.
      const { connected } = this.first;
      this.first = { bootImage: false };
      await connected?.catch(async (error: unknown) => {
        await super.deleteContainer(config.id).catch(() => {});
        throw error;
      });
      return { ...created, pid: this.handle.pid };
    } catch (error) {
      unbindVolumes(this.handle.dir, config.id);
      if (error instanceof SandboxError) throw error;
      throw new SandboxError((error as Error).message, { containerId: config.id });
    } finally {
      this.guestRecords.delete(config.id);
    }
  }

  override async deleteContainer(id: string): Promise<void> {
    await super.deleteContainer(id);
    unbindVolumes(this.handle.dir, id);
  }

  override async wait(id: string, execId?: string): Promise<ExitStatus> {
    try {
      return await super.wait(id, execId);
    } catch (error) {
      // The VM powers off right after the init's exit: a wait that loses the race reads the exit file.
      if (error instanceof SandboxError || execId) throw error;
      await this.vmGone();
      const exit = recordedExit(this.handle, id);
      if (!exit) throw error;
      return exit;
    }
  }
}

/** A VM that has powered off: its container is stopped, and the exit file says how it ended. */
export class ExitedSandbox implements Sandbox {
  constructor(readonly handle: QemuHandle, private readonly onDestroy: () => Promise<void>) {}

  private gone(id: string): never {
    throw new SandboxError('process not running', { containerId: id, errno: Errno.ESRCH });
  }

  createContainer(config: ContainerConfig): Promise<RunningProcess> {
    return Promise.reject(new SandboxError('the microVM has powered off', { containerId: config.id }));
  }

  async finishCreate(id: string): Promise<void> {
    this.gone(id);
  }

  async startContainer(id: string): Promise<void> {
    this.gone(id);
  }

  async exec(config: { containerId: string }): Promise<RunningProcess> {
    this.gone(config.containerId);
  }

  async signal(id: string): Promise<void> {
    this.gone(id);
  }

  async wait(id: string, execId?: string): Promise<ExitStatus> {
    const exit = execId ? undefined : recordedExit(this.handle, id);
    if (!exit) throw new SandboxError('the microVM has powered off and left no exit status', { containerId: id, errno: Errno.ENOENT });
    return exit;
  }

  async processes(id?: string): Promise<ProcessStatus[]> {
    const exit = id === undefined ? undefined : recordedExit(this.handle, id);
    if (!exit || !id) return [];
    return [{ containerId: id, pid: this.handle.pid, status: 'stopped', exit }];
  }

  async ps(): Promise<number[]> {
    return [];
  }

  async stats(id: string): Promise<Stats> {
    this.gone(id);
  }

  async pause(id: string): Promise<void> {
    this.gone(id);
  }

  async resume(id: string): Promise<void> {
    this.gone(id);
  }

  async resize(id: string): Promise<void> {
    this.gone(id);
  }

  async deleteContainer(): Promise<void> {}

  async recorded(): Promise<void> {}

  async destroy(): Promise<void> {
    await this.onDestroy();
  }

  disconnect(): void {}
}
