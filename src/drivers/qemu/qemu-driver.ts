// The qemu driver: every container in a microVM of its own (QEMU `-M microvm`), under a guest kernel, with the
// runbox agent as the guest's init. The VM lives from create until the container's init exits (the agent then
// powers it off) or until delete; QEMU itself holds the caller's stdio for the container, so a runc-style
// `create` needs nothing else on the host to outlive the CLI.
import { closeSync, openSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { basename, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CloneFailureError, RunboxError, SandboxError, VmStartError } from '../../errors/errors.js';
import {
  type Driver, type DriverCapabilities, type Sandbox, type SandboxConfig, type SandboxHandle,
} from '../../sandbox/driver.js';
import type { AgentClient } from '../../agent-client/agent-client.js';
import { HOOK_STATE_LIMIT } from '../../agent-client/agent-sandbox.js';
import { guestAssets, type Guest } from './guest-assets.js';
import { buildTemplate, cloneArgs, restoreClone, wakeClone } from './template-vm.js';
import { isProcessAlive, killProcessesUnder, processStartTime, withParentDeath } from '../../host/host-process.js';
import { KvmProbe } from './kvm-probe.js';
import { accelOutlook, ACCEL_ANNOTATION, KVM_VERDICT_FILE, kvmProbeTimeoutSeconds, parseAccelChoice, planAccel, type Accel } from './qemu-accel.js';
import { agentPortSocket, clientOnSession, leasePort, openSession } from './qemu-agent-port.js';
import { QEMU_BINARY, qemuArgs, vmFiles, type VmDevices } from './qemu-command.js';
import { vmResources } from './qemu-resources.js';
import {
  AGENT_PORTS, bootTimeoutSeconds, deadlineIn, kvmFailed, refuseReadWriteOutput, removeVmFiles, startVm, type Deadline, type StartedVm, type VmStart,
} from './qemu-process.js';
import { quitQemu } from './qemu-qmp.js';
import { ExitedSandbox, QemuSandbox, type FirstContainer, type QemuHandle } from './qemu-sandbox.js';
import { TEMPLATE_ANNOTATION, TemplateStore, templatesEnabled, type VmTemplate } from './qemu-template.js';
import { createRootfsDisk, fillRootfsDisk, nextImageOffset, recordDiskEnd } from './rootfs-image.js';
import { lazyDiskOf, type LazyDisk } from '../../lazy-loader/lazy-disk.js';
import { guestPodSpec, podMember } from './pod-in-vm.js';
import { createVolumesExport, unbindVolumes } from './pod-volumes.js';
import { moveTapIn, plugPodNetwork, podNetnsPath, unplugPodNetwork, type PodNetwork } from './pod-network.js';
import { refuseHostResources } from './vm-host-resources.js';
import { AGENT_GREETING_TIMEOUT_MS } from '../../generated/facts.js';
import { OCI_VERSION } from '../../oci/spec.js';
import { holdReserve, reserveDir, sweepReserves, takeReserve } from './vm-reserve.js';

const CONNECT_TIMEOUT_MS = 30_000;

/** A pod sandbox's network: the namespace CNI set up, and what its veth holds. */
interface PodNet {
  netns: string;
  network: PodNetwork;
}

/**
 * What a driver built on this one (the enclave driver) adds to a VM it starts: devices, the open files they use,
 * the command QEMU runs under; `release` closes this process's copies once QEMU has them (or did not start).
 */
export interface VmAdditions {
  devices?: VmDevices;
  inherit?: Array<number | Socket>;
  launcher?: (argv: string[]) => string[];
  release(): void;
}

export class QemuDriver implements Driver {
  readonly name: string = 'qemu';
  readonly capabilities: DriverCapabilities = {
    isolation: 'vm',
    description: 'a QEMU microVM per container, under its own guest kernel (KVM, or TCG emulation where KVM cannot run it)',
    pause: false,
    exec: true,
    terminal: true,
    ownKernel: true,
    hookStateLimit: HOOK_STATE_LIMIT,
    cgroups: true,
  };

  private readonly templates = new TemplateStore(basename(QEMU_BINARY));

  protected asVm(handle: SandboxHandle): QemuHandle {
    if (handle.driver !== this.name || typeof handle.pid !== 'number' || typeof handle.dir !== 'string') {
      throw new SandboxError(`not a ${this.name} sandbox handle: ${JSON.stringify(handle)}`);
    }
    return handle as QemuHandle;
  }

  /** What the VM boots (throws when something is missing); whether it is a pod's, boot adds. */
  protected guest(config: SandboxConfig): Omit<Guest, 'pod'> {
    const assets = guestAssets();
    return {
      // Absolute: QEMU runs in the VM's directory.
      kernel: resolve(process.env.RUNBOX_QEMU_KERNEL ?? assets.kernel),
      initrd: resolve(process.env.RUNBOX_QEMU_INITRD ?? assets.initrd),
      cmdline: assets.cmdline,
      resources: vmResources(config.spec),
    };
  }

  /** Builds the container's rootfs image into the VM's disk (while the guest boots); its size. */
  protected fillRootfs(config: SandboxConfig, disk: string): Promise<number> {
    return fillRootfsDisk(config.spec.root!.path, disk);
  }

  /** Whether this VM may be restored from a template. */
  protected templatesFor(config: SandboxConfig): boolean {
    return templatesEnabled(config.spec.annotations?.[TEMPLATE_ANNOTATION]);
  }

  /** What a VM about to start for `config` gets besides the microVM's own devices: nothing, here. */
  protected async additions(_config: SandboxConfig, _guest: Guest, _accel: Accel): Promise<VmAdditions> {
    return { release() {} };
  }

  /** The Sandbox over a VM's agent. */
  protected sandboxOver(
    handle: QemuHandle, client: AgentClient, destroy: () => Promise<void>, gone: () => Promise<void>, first?: FirstContainer,
  ): QemuSandbox {
    return new QemuSandbox(handle, client, destroy, gone, first);
  }

  async boot(config: SandboxConfig): Promise<Sandbox> {
    // What the first container cannot be given is refused before a VM starts (its create checks it again).
    const pod = podMember(config.spec);
    if (pod) guestPodSpec(config.id, config.spec, pod, { vmPid: 0 });
    else refuseHostResources(config.id, config.spec);
    if (config.stdio === 'inherit') refuseReadWriteOutput(config.id);
    const netns = pod?.isSandbox ? podNetnsPath(config.spec) : undefined;
    let guest: Guest;
    let plan: { accel: Accel; probe: boolean };
    let probeSeconds: number;
    let useTemplate: boolean;
    try {
      guest = { ...this.guest(config), pod: netns !== undefined };
      plan = planAccel(parseAccelChoice(config.spec.annotations?.[ACCEL_ANNOTATION] ?? process.env.RUNBOX_QEMU_ACCEL));
      probeSeconds = kvmProbeTimeoutSeconds();
      useTemplate = this.templatesFor(config);
    } catch (error) {
      throw error instanceof RunboxError ? error : new SandboxError((error as Error).message);
    }
    let podNet: PodNet | undefined;
    const timeout = bootTimeoutSeconds(config.spec);
    const disk = vmFiles(config.dir).image;
    // A lazily served rootfs is attached over NBD as it is: nothing to build.
    const lazy = await lazyDiskOf(config.spec.root!.path).catch((error: Error) => {
      throw new SandboxError(error.message);
    });
    // A pod's later containers are added to its VM's one disk, which a lazily served disk (NBD) is not.
    if (lazy && pod) throw new SandboxError('a lazily served rootfs cannot start a pod\'s microVM: pull the pod\'s sandbox image in full', { containerId: config.id });
    let image: Promise<void> | undefined;
    // Built while the guest boots (or is restored), which reads the disk only when the container is created;
    // started once QEMU is: starting mkfs forks this process, which would hold QEMU's own start back by as long.
    const buildImage = (): Promise<void> => {
      if (!image) {
        image = lazy ? Promise.resolve() : this.fillRootfs(config, disk).then((size) => recordDiskEnd(config.dir, nextImageOffset(0, size)));
        image.catch(() => {}); // a launch that fails first leaves it unawaited
      }
      return image;
    };
    try {
      // A pod's sandbox takes the VM its pooled shim restored while it waited, when it is the VM this boot would start.
      if (netns && !lazy && useTemplate && !plan.probe && config.stdio === 'null') {
        const sandbox = await this.fromReserve(config, guest, plan.accel, netns);
        if (sandbox) return sandbox;
      }
      if (netns) podNet = { netns, network: plugPodNetwork(netns) };
      if (!lazy) createRootfsDisk(config.spec.root!.path, disk);
      let accel = plan.accel;
      if (plan.probe) {
        // The probe boots this VM, never a template: a template is built only with an acceleration seen to work.
        const probe = await KvmProbe.claim();
        if (typeof probe === 'string') accel = probe;
        else {
          try {
            return await this.launch(config, guest, buildImage, 'kvm', deadlineIn(timeout), {
              probe: { greetBy: deadlineIn(probeSeconds), kvm: probe }, disk: lazy, podNet,
            });
          } catch (error) {
            if (!kvmFailed(error)) throw error;
            probe.settle(false, error.message);
            config.log?.(`KVM was tried and not used: ${error.message}; the microVM runs on TCG (software emulation), as ` +
              `the next ones on this host will (kept in ${KVM_VERDICT_FILE} until the host reboots)`);
            accel = 'tcg';
          } finally {
            probe.release();
          }
        }
      }
      // One deadline for the template's boot, if it is built now; one for this VM, restored or booted.
      const template = useTemplate ? await this.template(guest, accel, deadlineIn(timeout)) : undefined;
      const deadline = deadlineIn(timeout);
      if (template) {
        try {
          return await this.launch(config, guest, buildImage, accel, deadline, { template, disk: lazy, podNet });
        } catch (error) {
          if (!(error instanceof CloneFailureError)) throw error;
          // A template this QEMU cannot restore (or whose guest cannot take the host's time and entropy):
          // drop it, so the next VM builds a good one, and boot this one.
          this.templates.discard(template.key);
        }
      }
      return await this.launch(config, guest, buildImage, accel, deadline, { disk: lazy, podNet });
    } catch (error) {
      await image?.catch(() => {}); // it removes its own files when it ends, whatever the outcome
      rmSync(disk, { force: true });
      if (podNet) unplugPodNetwork(podNet.netns);
      unbindVolumes(config.dir);
      throw error instanceof SandboxError ? error : new SandboxError((error as Error).message);
    }
  }

  /**
   * Restores a pod VM ahead of need in `poolDir` for this process's first pod (vm-reserve.ts); throws, saying why,
   * when none can be kept here: the acceleration is not known yet (the first VM probes it), templates are off or
   * impossible, or the restore or its warm-up failed.
   */
  async reserve(poolDir: string, startTime: string): Promise<void> {
    sweepReserves(poolDir);
    const config: SandboxConfig = { id: 'reserve', dir: poolDir, stdio: 'null', spec: { ociVersion: OCI_VERSION } };
    const guest = { ...this.guest(config), pod: true };
    const plan = planAccel(parseAccelChoice(process.env.RUNBOX_QEMU_ACCEL));
    if (plan.probe) throw new SandboxError('no VM can wait yet: this host\'s first VM has not found out whether KVM works');
    if (!this.templatesFor(config)) throw new SandboxError('no VM can wait: VM templates are off (RUNBOX_QEMU_TEMPLATE)');
    const timeout = bootTimeoutSeconds(config.spec);
    const template = await this.template(guest, plan.accel, deadlineIn(timeout));
    if (!template) throw new SandboxError(`no VM can wait: no VM template can be kept in ${this.templates.root}`);
    await holdReserve(reserveDir(poolDir, process.pid, startTime), guest, plan.accel, template, deadlineIn(timeout));
  }

  /** This process's waiting VM (vm-reserve.ts) if it is what this VM's template would be (files as they are now). */
  private async fromReserve(config: SandboxConfig, guest: Guest, accel: Accel, netns: string): Promise<Sandbox | undefined> {
    const key = () => this.templates.describe({ qemu: QEMU_BINARY, ...guest, accel, agentPorts: AGENT_PORTS }).key;
    const { vm, template } = takeReserve(key, config.dir) ?? {};
    if (!vm || !template) return undefined;
    const handle: QemuHandle = { ...vm.handle, driver: this.name, template: template.key, podNetns: netns };
    try {
      // The network is read while the sandbox container's create is prepared, which waits for it; the tap's move
      // overlaps that create in the guest, which waits for it in turn (qemu-sandbox.ts). A create that never comes
      // does not wait for either.
      const { network, connected } = moveTapIn(netns, vm.handle.pid);
      network.catch(() => {});
      connected.catch(() => {});
      return this.sandboxOver(handle, vm.client, () => this.endAfterShutdown(handle), () => this.vmGone(handle), { bootImage: false, network, connected });
    } catch (error) {
      vm.client.close();
      vm.child.kill('SIGKILL');
      await this.vmGone(handle, 1000);
      unplugPodNetwork(netns);
      removeVmFiles(handle);
      throw error;
    }
  }

  /**
   * The template this VM can be restored from, built now if there is none (that one boot, and the snapshot, add
   * ~0.1 s to this VM's start); undefined when no template can be kept here.
   */
  private async template(guest: Guest, accel: Accel, deadline: Deadline): Promise<VmTemplate | undefined> {
    const inputs = { qemu: QEMU_BINARY, ...guest, accel, agentPorts: AGENT_PORTS };
    try {
      return await this.templates.obtain(inputs, (dir) => buildTemplate(dir, guest, accel, deadline));
    } catch (error) {
      // No template can be kept here (no room, no writable directory): the store says so with an errno.
      if (error instanceof RunboxError || (error as NodeJS.ErrnoException).code === undefined) throw error;
      return undefined;
    }
  }

  /**
   * Starts the container's VM, booted (as a KVM probe, or not) or restored from `template`, and waits for the
   * agent's greeting and the rootfs image; on any failure nothing of the VM is left but the disk (boot's).
   */
  private async launch(
    config: SandboxConfig, guest: Guest, buildImage: () => Promise<void>, accel: Accel, deadline: Deadline,
    { template, probe, disk, podNet }: { template?: VmTemplate; probe?: VmStart['probe']; disk?: LazyDisk | undefined; podNet?: PodNet } = {},
  ): Promise<Sandbox> {
    const files = vmFiles(config.dir);
    let image: Promise<void> | undefined;
    let stateFd: number | undefined;
    if (template) {
      try {
        stateFd = openSync(template.state, 'r');
      } catch (error) {
        throw new CloneFailureError(`cannot open the template's snapshot: ${(error as Error).message}`);
      }
    }
    let vm: StartedVm;
    let additions: VmAdditions | undefined;
    try {
      additions = await this.additions(config, guest, accel);
      // A driver's launcher, inside one that ties QEMU to a caller it ends with.
      const { launcher: own } = additions;
      const launcher = config.endsWithCaller ? (argv: string[]) => withParentDeath(own ? own(argv) : argv) : own;
      vm = await startVm({
        dir: config.dir,
        accel,
        deadline,
        inheritStdio: config.stdio === 'inherit',
        snapshotFd: stateFd,
        ...(podNet && { netns: podNet.netns }),
        args: (stdio) => qemuArgs({
          ...guest, dir: config.dir, accel, agentPorts: AGENT_PORTS, stdio, image: disk ?? files.image,
          ...(template && cloneArgs(template)),
          ...(podNet && { nic: { mac: podNet.network.mac }, volumes: createVolumesExport(config.dir) }),
          ...(additions?.devices && { devices: additions.devices }),
        }),
        ...(additions.inherit && { inherit: additions.inherit }),
        ...(launcher && { launcher }),
        spawned: (signal) => {
          image = buildImage();
          return template ? Promise.all([image, restoreClone(files.qmp, signal)]) : image;
        },
        ready: async (client, stdio) => {
          if (template) await wakeClone(client, stdio);
          await image;
        },
        probe,
      });
    } catch (error) {
      if (stateFd !== undefined && !additions) closeSync(stateFd);
      // A clone that failed on its own account (its restore, or QEMU ending by itself: not its rootfs, not the
      // deadline) is booted instead.
      const what = error instanceof VmStartError ? error.what : undefined;
      if (template && what && !what.timedOut && (what.cause instanceof CloneFailureError || what.qemuEnded)) {
        throw new CloneFailureError((error as Error).message);
      }
      throw error;
    } finally {
      additions?.release();
    }
    vm.child.unref();
    const handle: QemuHandle = {
      ...vm.handle, driver: this.name, ...(template && { template: template.key }), ...(podNet && { podNetns: podNet.netns }),
    };
    return this.sandboxOver(handle, vm.client, () => this.endAfterShutdown(handle), () => this.vmGone(handle), {
      bootImage: true, ...(podNet && { network: podNet.network }),
    });
  }

  async connect(handle: SandboxHandle): Promise<Sandbox> {
    const vm = this.asVm(handle);
    const exited = () => new ExitedSandbox(vm, () => this.cleanup(vm));
    if (!this.isAlive(vm)) return exited();
    const lease = await leasePort(vm.dir, vm.agentPorts);
    const deadline = Date.now() + CONNECT_TIMEOUT_MS;
    for (;;) {
      try {
        const socket = await openSession(agentPortSocket(vm.dir, lease.index), AbortSignal.timeout(AGENT_GREETING_TIMEOUT_MS));
        return this.sandboxOver(vm, clientOnSession(socket, lease), () => this.endAfterShutdown(vm), () => this.vmGone(vm));
      } catch (error) {
        // No greeting: the VM is going (it powers off after its container), or the port still held an old
        // session; leaving makes the agent start a new one.
        if (!this.isAlive(vm)) {
          lease.release();
          return exited();
        }
        if (Date.now() > deadline) {
          lease.release();
          throw new SandboxError(`cannot reach the agent in the microVM (QEMU pid ${vm.pid}): ${(error as Error).message}`);
        }
        await sleep(50);
      }
    }
  }

  hostOutlook(): Record<string, string> {
    const { accel, why } = accelOutlook();
    return { 'io.runbox.driver.qemu.accel': accel, 'io.runbox.driver.qemu.accel.why': why };
  }

  /**
   * A boot whose caller died before it was recorded: a booting guest powers itself off with nobody attached, but a
   * clone still waiting for its restore never runs at all. Ends its QEMU and removes its files.
   */
  async abandonedBoot(dir: string): Promise<void> {
    const pids = killProcessesUnder(basename(QEMU_BINARY), dir);
    for (const until = Date.now() + 2000; pids.some((pid) => processStartTime(pid)) && Date.now() < until;) await sleep(10);
    unbindVolumes(dir);
    removeVmFiles({ dir, agentPorts: AGENT_PORTS });
  }

  isAlive(handle: SandboxHandle): boolean {
    const vm = this.asVm(handle);
    return isProcessAlive(vm.pid, vm.startTime);
  }

  /** Waits (a little) for QEMU to exit by itself, as it does once the guest powers off. */
  private async vmGone(vm: QemuHandle, ms = 3000): Promise<void> {
    for (const until = Date.now() + ms; this.isAlive(vm) && Date.now() < until;) await sleep(10);
  }

  /** After the agent was told to shut down: the guest powers off, and QEMU exits, by itself unless it is slow to. */
  private async endAfterShutdown(vm: QemuHandle): Promise<void> {
    await this.vmGone(vm, 2000);
    await this.cleanup(vm);
  }

  /** Nothing waits for a guest that cannot be reached (its shim died): QEMU is told to quit at once. */
  async cleanup(handle: SandboxHandle): Promise<void> {
    const vm = this.asVm(handle);
    if (this.isAlive(vm)) {
      await quitQemu(vmFiles(vm.dir).qmp);
      await this.vmGone(vm, 1000);
    }
    if (this.isAlive(vm)) {
      try {
        process.kill(vm.pid, 'SIGKILL');
      } catch {
        // gone
      }
      await this.vmGone(vm, 1000);
    }
    if (vm.podNetns) unplugPodNetwork(vm.podNetns);
    unbindVolumes(vm.dir);
    removeVmFiles(vm);
  }
}
