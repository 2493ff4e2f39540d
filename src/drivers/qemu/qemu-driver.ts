// The qemu driver: every container in a microVM of its own (QEMU `-M microvm`), under a guest kernel, with the
// runbox agent as the guest's init. The VM lives from create until the container's init exits (the agent then
// powers it off) or until delete; QEMU itself holds the caller's stdio for the container, so a runc-style
// `create` needs nothing else on the host to outlive the CLI.
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CloneFailureError, RunboxError, SandboxError, VmStartError } from '../../errors/errors.js';
import {
  type Driver, type DriverCapabilities, type Sandbox, type SandboxConfig, type SandboxHandle,
} from '../../sandbox/driver.js';
import type { AgentClient } from '../../agent-client/agent-client.js';
import { HOOK_STATE_LIMIT } from '../../agent-client/agent-sandbox.js';
import { guestAssets, type GuestAssets } from './guest-assets.js';
import { isProcessAlive, killProcessesUnder, processStartTime } from '../../host/host-process.js';
import { KvmProbe } from './kvm-probe.js';
import { accelOutlook, ACCEL_ANNOTATION, KVM_VERDICT_FILE, kvmProbeTimeoutSeconds, parseAccelChoice, planAccel, type Accel } from './qemu-accel.js';
import { agentPortSocket, clientOnSession, leasePort, openSession } from './qemu-agent-port.js';
import { QEMU_BINARY, qemuArgs, vmFiles, type InheritedStdio } from './qemu-command.js';
import { vmResources, type VmResources } from './qemu-resources.js';
import {
  AGENT_PORTS, deadlineIn, kvmFailed, refuseReadWriteOutput, removeVmFiles, SNAPSHOT_FD, startVm, type Deadline, type StartedVm, type VmStart,
} from './qemu-process.js';
import { QmpClient, quitQemu } from './qemu-qmp.js';
import { ExitedSandbox, QemuSandbox, type QemuHandle } from './qemu-sandbox.js';
import { restoreSnapshot, saveSnapshot, stopWhenQuiet } from './qemu-snapshot.js';
import { TEMPLATE_ANNOTATION, TemplateStore, templatesEnabled, type VmTemplate } from './qemu-template.js';
import { createEmptyDisk, createRootfsDisk, fillRootfsDisk, nextImageOffset, recordDiskEnd } from './rootfs-image.js';
import { lazyDiskOf, type LazyDisk } from '../../lazy-loader/lazy-disk.js';
import { untilListening } from '../../host/until-listening.js';
import { guestPodSpec, podMember } from './pod-in-vm.js';
import { createVolumesExport, unbindVolumes } from './pod-volumes.js';
import { plugPodNetwork, podNetnsPath, unplugPodNetwork, type PodNetwork } from './pod-network.js';
import { refuseHostResources } from './vm-host-resources.js';
import { AGENT_GREETING_TIMEOUT_MS } from '../../generated/facts.js';

/** The annotation (else RUNBOX_QEMU_BOOT_TIMEOUT) that sets how long a guest may take to report ready, in seconds. */
export const BOOT_TIMEOUT_ANNOTATION = 'io.runbox.qemu.boot-timeout';
const DEFAULT_BOOT_TIMEOUT_S = 30;
const CONNECT_TIMEOUT_MS = 30_000;
/** What a clone's kernel is reseeded with: as much as its CRNG's key, twice. */
const CLONE_ENTROPY_BYTES = 64;

/** What a VM boots, or was booted from when it is a clone. */
interface Guest {
  kernel: string;
  initrd: string;
  cmdline: string[];
  resources: VmResources;
  /** A pod's: a NIC on a tap (its network) and a 9p export (its volumes); a template's device layout, so part of its key. */
  pod: boolean;
}

/** A pod sandbox's network: the namespace CNI set up, and what its veth holds. */
interface PodNet {
  netns: string;
  network: PodNetwork;
}

/** A template's 9p export: an empty directory of its own, in which nothing is ever mounted. */
function templateExport(dir: string): string {
  const path = join(dir, 'volumes');
  mkdirSync(path, { mode: 0o700, recursive: true });
  return path;
}

function asQemu(handle: SandboxHandle): QemuHandle {
  if (handle.driver !== 'qemu' || typeof handle.pid !== 'number' || typeof handle.dir !== 'string') {
    throw new Error(`not a qemu sandbox handle: ${JSON.stringify(handle)}`);
  }
  return handle as QemuHandle;
}

function bootTimeoutSeconds(config: SandboxConfig): number {
  const raw = config.spec.annotations?.[BOOT_TIMEOUT_ANNOTATION] ?? process.env.RUNBOX_QEMU_BOOT_TIMEOUT;
  if (raw === undefined) return DEFAULT_BOOT_TIMEOUT_S;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new SandboxError(`invalid qemu boot timeout "${raw}" (expected seconds > 0)`);
  return seconds;
}

export class QemuDriver implements Driver {
  readonly name = 'qemu';
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

  async boot(config: SandboxConfig): Promise<Sandbox> {
    // What the first container cannot be given is refused before a VM starts (its create checks it again).
    const pod = podMember(config.spec);
    if (pod) guestPodSpec(config.id, config.spec, pod, { vmPid: 0 });
    else refuseHostResources(config.id, config.spec);
    if (config.stdio === 'inherit') refuseReadWriteOutput(config.id);
    let assets: GuestAssets;
    let plan: { accel: Accel; probe: boolean };
    let probeSeconds: number;
    let useTemplate: boolean;
    let resources: VmResources;
    try {
      assets = guestAssets();
      plan = planAccel(parseAccelChoice(config.spec.annotations?.[ACCEL_ANNOTATION] ?? process.env.RUNBOX_QEMU_ACCEL));
      probeSeconds = kvmProbeTimeoutSeconds();
      useTemplate = templatesEnabled(config.spec.annotations?.[TEMPLATE_ANNOTATION]);
      resources = vmResources(config.spec);
    } catch (error) {
      throw new SandboxError((error as Error).message);
    }
    const netns = pod?.isSandbox ? podNetnsPath(config.spec) : undefined;
    const guest: Guest = {
      // Absolute: QEMU runs in the VM's directory.
      kernel: resolve(process.env.RUNBOX_QEMU_KERNEL ?? assets.kernel),
      initrd: resolve(process.env.RUNBOX_QEMU_INITRD ?? assets.initrd),
      cmdline: assets.cmdline,
      resources,
      pod: netns !== undefined,
    };
    let podNet: PodNet | undefined;
    const timeout = bootTimeoutSeconds(config);
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
        image = lazy ? Promise.resolve() : fillRootfsDisk(config.spec.root!.path, disk).then((size) => recordDiskEnd(config.dir, nextImageOffset(0, size)));
        image.catch(() => {}); // a launch that fails first leaves it unawaited
      }
      return image;
    };
    try {
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
   * The template this VM can be restored from, built now if there is none (that one boot, and the snapshot, add
   * ~0.1 s to this VM's start); undefined when no template can be kept here.
   */
  private async template(guest: Guest, accel: Accel, deadline: Deadline): Promise<VmTemplate | undefined> {
    const inputs = { qemu: QEMU_BINARY, ...guest, accel, agentPorts: AGENT_PORTS };
    try {
      return await this.templates.obtain(inputs, (dir) => this.buildTemplate(dir, guest, accel, deadline));
    } catch (error) {
      // No template can be kept here (no room, no writable directory): the store says so with an errno.
      if (error instanceof RunboxError || (error as NodeJS.ErrnoException).code === undefined) throw error;
      return undefined;
    }
  }

  /** Boots a template VM in `dir` with its RAM in `dir/ram`, snapshots it once its agent has greeted, ends it. */
  private async buildTemplate(dir: string, guest: Guest, accel: Accel, deadline: Deadline): Promise<void> {
    const files = vmFiles(dir);
    createEmptyDisk(files.image);
    const vm = await startVm({
      dir,
      accel,
      deadline,
      inheritStdio: false,
      // A NIC's tap in a network namespace of its own, which goes with the template's QEMU, and an empty export
      // (a clone's is its own: a 9p device not yet mounted restores onto another path).
      ...(guest.pod && { netns: 'private' }),
      args: () => qemuArgs({
        ...guest, dir, accel, agentPorts: AGENT_PORTS, stdio: {}, image: files.image, everyStdioPort: true,
        memory: { path: join(dir, 'ram'), shared: true }, ...(guest.pod && { nic: {}, volumes: templateExport(dir) }),
      }),
    });
    vm.client.close();
    let qmp: QmpClient | undefined;
    try {
      qmp = await QmpClient.connect(files.qmp);
      await stopWhenQuiet(qmp, 'agent');
      await saveSnapshot(qmp, join(dir, 'state'));
      await qmp.execute('quit').catch(() => {}); // QEMU may close before it answers
    } catch (error) {
      throw new SandboxError(
        `cannot snapshot the template microVM (accel ${accel}): ${(error as Error).message} (${TEMPLATE_ANNOTATION}=off boots without one)`,
      );
    } finally {
      qmp?.close();
      if (!(await Promise.race([vm.exited.then(() => true), sleep(3000).then(() => false)]))) {
        vm.child.kill('SIGKILL');
        await vm.exited;
      }
      removeVmFiles(vm.handle);
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
    try {
      vm = await startVm({
        dir: config.dir,
        accel,
        deadline,
        inheritStdio: config.stdio === 'inherit',
        snapshotFd: stateFd,
        ...(podNet && { netns: podNet.netns }),
        args: (stdio) => qemuArgs({
          ...guest, dir: config.dir, accel, agentPorts: AGENT_PORTS, stdio, image: disk ?? files.image,
          ...(template && { everyStdioPort: true, incoming: true, memory: { path: template.ram, shared: false } }),
          ...(podNet && { nic: { mac: podNet.network.mac }, volumes: createVolumesExport(config.dir) }),
        }),
        spawned: (signal) => {
          image = buildImage();
          return template ? Promise.all([image, this.restore(files.qmp, signal)]) : image;
        },
        ready: async (client, stdio) => {
          if (template) await this.woken(client, stdio);
          await image;
        },
        probe,
      });
    } catch (error) {
      // A clone that failed on its own account (its restore, or QEMU ending by itself: not its rootfs, not the
      // deadline) is booted instead.
      const what = error instanceof VmStartError ? error.what : undefined;
      if (template && what && !what.timedOut && (what.cause instanceof CloneFailureError || what.qemuEnded)) {
        throw new CloneFailureError((error as Error).message);
      }
      throw error;
    }
    vm.child.unref();
    const handle: QemuHandle = { ...vm.handle, ...(template && { template: template.key }), ...(podNet && { podNetns: podNet.netns }) };
    return new QemuSandbox(handle, vm.client, () => this.cleanup(handle), () => this.vmGone(handle), {
      bootImage: true, ...(podNet && { network: podNet.network }),
    });
  }

  /** Restores the template's snapshot (QEMU inherited it as SNAPSHOT_FD) into a clone that has just started. */
  private async restore(qmpPath: string, signal: AbortSignal): Promise<void> {
    let qmp: QmpClient | undefined;
    try {
      qmp = await untilListening(() => QmpClient.connect(qmpPath), signal);
      await restoreSnapshot(qmp, SNAPSHOT_FD);
    } catch (error) {
      if (signal.aborted) return;
      throw new CloneFailureError(`cannot restore the template's snapshot: ${(error as Error).message}`);
    } finally {
      qmp?.close();
    }
  }

  /** What a clone takes from its host before anything else: the time, fresh entropy, which stdio it lacks. */
  private async woken(client: AgentClient, stdio: InheritedStdio): Promise<void> {
    const absent = (['stdin', 'stdout', 'stderr'] as const).filter((name) => !stdio[name]);
    try {
      await client.request([
        ['op', 'vm_restored'],
        ['realtime_ns', String(BigInt(Date.now()) * 1_000_000n)],
        ['entropy', randomBytes(CLONE_ENTROPY_BYTES).toString('hex')],
        ...absent.map((name): [string, string] => ['stdio_absent', name]),
      ]);
    } catch (error) {
      throw new CloneFailureError(`the restored guest refused the host's time and entropy: ${(error as Error).message}`);
    }
  }

  async connect(handle: SandboxHandle): Promise<Sandbox> {
    const vm = asQemu(handle);
    const exited = () => new ExitedSandbox(vm, () => this.cleanup(vm));
    if (!this.isAlive(vm)) return exited();
    const lease = await leasePort(vm.dir, vm.agentPorts);
    const deadline = Date.now() + CONNECT_TIMEOUT_MS;
    for (;;) {
      try {
        const socket = await openSession(agentPortSocket(vm.dir, lease.index), AbortSignal.timeout(AGENT_GREETING_TIMEOUT_MS));
        return new QemuSandbox(vm, clientOnSession(socket, lease), () => this.cleanup(vm), () => this.vmGone(vm));
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
    const vm = asQemu(handle);
    return isProcessAlive(vm.pid, vm.startTime);
  }

  /** Waits (a little) for QEMU to exit by itself, as it does once the guest powers off. */
  private async vmGone(vm: QemuHandle, ms = 3000): Promise<void> {
    for (const until = Date.now() + ms; this.isAlive(vm) && Date.now() < until;) await sleep(10);
  }

  async cleanup(handle: SandboxHandle): Promise<void> {
    const vm = asQemu(handle);
    await this.vmGone(vm, 2000);
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
