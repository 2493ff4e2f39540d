// The qemu driver: every container in a microVM of its own (QEMU `-M microvm`), under a guest kernel, with the
// runbox agent as the guest's init. The VM lives from create until the container's init exits (the agent then
// powers it off) or until delete; QEMU itself holds the caller's stdio for the container, so a runc-style
// `create` needs nothing else on the host to outlive the CLI.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isatty } from 'node:tty';
import {
  SandboxError, type Driver, type DriverCapabilities, type Sandbox, type SandboxConfig, type SandboxHandle,
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
import { QmpClient, queryRunState, quitQemu } from './qemu-qmp.js';
import { ExitedSandbox, QemuSandbox, type QemuHandle } from './qemu-sandbox.js';
import { restoreSnapshot, saveSnapshot, stopWhenQuiet } from './qemu-snapshot.js';
import { TEMPLATE_ANNOTATION, TemplateStore, templatesEnabled, type VmTemplate } from './qemu-template.js';
import { createEmptyDisk, createRootfsDisk, fillRootfsDisk, ROOTFS_FSTYPE } from './rootfs-image.js';
import { lazyDiskOf, type LazyDisk } from '../../lazy-loader/lazy-disk.js';
import { untilListening } from '../../host/until-listening.js';
import { refuseHostResources } from './vm-host-resources.js';

/** Ports for host clients: this many runbox invocations (or a shim and invocations) may talk to one VM at once. */
export const AGENT_PORTS = 4;
/** The annotation (else RUNBOX_QEMU_BOOT_TIMEOUT) that sets how long a guest may take to report ready, in seconds. */
export const BOOT_TIMEOUT_ANNOTATION = 'io.runbox.qemu.boot-timeout';
const DEFAULT_BOOT_TIMEOUT_S = 30;
/** A later invocation waits this long for the agent's greeting on a port before it tries again. */
const GREETING_TIMEOUT_MS = 3000;
const CONNECT_TIMEOUT_MS = 30_000;
/** The access mode bits of an open file's flags (Linux's; Node's fs.constants lacks them). */
const O_ACCMODE = 0o3;
/** The fd a clone's QEMU reads its template's snapshot from: after the caller's stdio (inheritableStdio). */
const SNAPSHOT_FD = 6;
/** What a clone's kernel is reseeded with: as much as its CRNG's key, twice. */
const CLONE_ENTROPY_BYTES = 64;

/** What a VM boots, or was booted from when it is a clone. */
interface Guest {
  kernel: string;
  initrd: string;
  cmdline: string[];
  resources: VmResources;
}

/** A clone that could not be restored: its template is dropped and the VM booted instead. */
class CloneFailure extends SandboxError {}

/** When a VM start gives up: `seconds` after it was set, which the error names. */
interface Deadline {
  at: number;
  seconds: number;
}

function deadlineIn(seconds: number): Deadline {
  return { at: Date.now() + seconds * 1000, seconds };
}

interface VmStart {
  dir: string;
  accel: Accel;
  deadline: Deadline;
  /** Whether QEMU holds the caller's stdio for the container (inheritableStdio), or the VM has none. */
  inheritStdio: boolean;
  /** QEMU's command line, given the stdio it holds. */
  args(stdio: InheritedStdio): string[];
  /** The template's snapshot, which QEMU inherits as SNAPSHOT_FD (closed here once spawned). */
  snapshotFd?: number;
  /** Runs once QEMU is spawned, alongside the wait for the greeting: a rejection ends the start. */
  spawned?(signal: AbortSignal): Promise<unknown>;
  /** Runs on the greeted session; the VM has started once it has resolved. */
  ready?(client: AgentClient, stdio: InheritedStdio): Promise<void>;
  /** A KVM probe's: the guest is to greet by then (the start times out otherwise), and the probe settles when it has. */
  probe?: { greetBy: Deadline; kvm: KvmProbe };
}

/** Why a VM did not start, in words for the user; and what happened, for a caller that can try another way. */
class VmStartError extends SandboxError {
  constructor(
    message: string,
    readonly what: { cause: unknown; timedOut: boolean; qemuEnded: boolean; qemuRan: boolean; greeted: boolean },
  ) {
    super(message);
  }
}

/** A start on KVM that tells KVM cannot run the guest here: QEMU ran, and ended or timed out before any greeting. */
function kvmFailed(error: unknown): error is VmStartError {
  if (!(error instanceof VmStartError)) return false;
  const { qemuRan, greeted, qemuEnded, timedOut } = error.what;
  return qemuRan && !greeted && (qemuEnded || timedOut);
}

interface StartedVm {
  child: ChildProcess;
  handle: QemuHandle;
  client: AgentClient;
  /** Resolves when QEMU has exited, with why. */
  exited: Promise<string>;
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

/**
 * The caller's fds 0-2 that QEMU can hold for the container, and QEMU's own stdio for spawn: fd 0 the caller's
 * stdin (unless that is a socket: then fd 3), 1 and 2 its log, 4 and 5 the caller's stdout and stderr. A
 * terminal's input is left alone: QEMU would read it whether or not the container does.
 */
function inheritableStdio(log: number): { stdio: InheritedStdio; fds: Array<number | 'ignore'> } {
  const kind = (fd: number): 'socket' | 'file' | 'terminal' | undefined => {
    try {
      const stat = fstatSync(fd);
      return stat.isSocket() ? 'socket' : stat.isCharacterDevice() && isatty(fd) ? 'terminal' : 'file';
    } catch {
      return undefined; // closed
    }
  };
  // The access mode in the fd's flags (/proc/self/fdinfo: octal): an fd set hands QEMU only write-only files.
  const writeOnly = (fd: number): boolean => {
    try {
      const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      return flags !== undefined && (parseInt(flags, 8) & O_ACCMODE) === constants.O_WRONLY;
    } catch {
      return false;
    }
  };
  const stdio: InheritedStdio = {};
  const fds: Array<number | 'ignore'> = ['ignore', log, log, 'ignore', 'ignore', 'ignore'];
  const stdin = kind(0);
  if (stdin === 'socket') [stdio.stdin, fds[3]] = [{ kind: 'socket', fd: 3 }, 0];
  else if (stdin === 'file') [stdio.stdin, fds[0]] = [{ kind: 'stdio' }, 0];
  for (const [name, fd, qemuFd] of [['stdout', 1, 4], ['stderr', 2, 5]] as const) {
    const what = kind(fd);
    if (what === undefined) continue;
    stdio[name] = { kind: what === 'socket' ? 'socket' : what === 'file' && writeOnly(fd) ? 'shared' : 'file', fd: qemuFd };
    fds[qemuFd] = fd;
  }
  return { stdio, fds };
}

/** The last lines of a log, one line; for a guest console, the kernel's panic message if there is one. */
function tail(path: string, lines: number): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
  const panic = /Kernel panic - not syncing: .*/.exec(text);
  return panic ? panic[0].trim() : text.split('\n').slice(-lines).join(' | ');
}

/** Everything a VM leaves in its directory (the directory itself is the caller's); the rootfs disk too, unless kept. */
function removeVmFiles(handle: Pick<QemuHandle, 'dir' | 'agentPorts'>, keepDisk = false): void {
  const files = vmFiles(handle.dir);
  for (const path of [files.qmp, files.exit, files.console, files.log]) rmSync(path, { force: true });
  if (!keepDisk) rmSync(files.image, { force: true });
  for (let i = 0; i < handle.agentPorts; i++) {
    rmSync(agentPortSocket(handle.dir, i), { force: true });
    rmSync(`${handle.dir}/agent-${i}.lock`, { force: true });
  }
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
    refuseHostResources(config.id, config.spec);
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
    const guest: Guest = {
      // Absolute: QEMU runs in the VM's directory.
      kernel: resolve(process.env.RUNBOX_QEMU_KERNEL ?? assets.kernel),
      initrd: resolve(process.env.RUNBOX_QEMU_INITRD ?? assets.initrd),
      cmdline: assets.cmdline,
      resources,
    };
    const timeout = bootTimeoutSeconds(config);
    const disk = vmFiles(config.dir).image;
    // A lazily served rootfs is attached over NBD as it is: nothing to build.
    const lazy = await lazyDiskOf(config.spec.root!.path).catch((error: Error) => {
      throw new SandboxError(error.message);
    });
    let image: Promise<void> | undefined;
    // Built while the guest boots (or is restored), which reads the disk only when the container is created;
    // started once QEMU is: starting mkfs forks this process, which would hold QEMU's own start back by as long.
    const buildImage = (): Promise<void> => {
      if (!image) {
        image = lazy ? Promise.resolve() : fillRootfsDisk(config.spec.root!.path, disk);
        image.catch(() => {}); // a launch that fails first leaves it unawaited
      }
      return image;
    };
    try {
      if (!lazy) createRootfsDisk(config.spec.root!.path, disk);
      let accel = plan.accel;
      if (plan.probe) {
        // The probe boots this VM, never a template: a template is built only with an acceleration seen to work.
        const probe = await KvmProbe.claim();
        if (typeof probe === 'string') accel = probe;
        else {
          try {
            return await this.launch(config, guest, buildImage, 'kvm', deadlineIn(timeout), {
              probe: { greetBy: deadlineIn(probeSeconds), kvm: probe }, disk: lazy,
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
          return await this.launch(config, guest, buildImage, accel, deadline, { template, disk: lazy });
        } catch (error) {
          if (!(error instanceof CloneFailure)) throw error;
          // A template this QEMU cannot restore (or whose guest cannot take the host's time and entropy):
          // drop it, so the next VM builds a good one, and boot this one.
          this.templates.discard(template.key);
        }
      }
      return await this.launch(config, guest, buildImage, accel, deadline, { disk: lazy });
    } catch (error) {
      await image?.catch(() => {}); // it removes its own files when it ends, whatever the outcome
      rmSync(disk, { force: true });
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
      if (error instanceof SandboxError || (error as NodeJS.ErrnoException).code === undefined) throw error;
      return undefined;
    }
  }

  /** Boots a template VM in `dir` with its RAM in `dir/ram`, snapshots it once its agent has greeted, ends it. */
  private async buildTemplate(dir: string, guest: Guest, accel: Accel, deadline: Deadline): Promise<void> {
    const files = vmFiles(dir);
    createEmptyDisk(files.image);
    const vm = await this.startVm({
      dir,
      accel,
      deadline,
      inheritStdio: false,
      args: () => qemuArgs({
        ...guest, dir, accel, agentPorts: AGENT_PORTS, stdio: {}, image: files.image, everyStdioPort: true,
        memory: { path: join(dir, 'ram'), shared: true },
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
    { template, probe, disk }: { template?: VmTemplate; probe?: VmStart['probe']; disk?: LazyDisk | undefined } = {},
  ): Promise<Sandbox> {
    const files = vmFiles(config.dir);
    let image: Promise<void> | undefined;
    let stateFd: number | undefined;
    if (template) {
      try {
        stateFd = openSync(template.state, 'r');
      } catch (error) {
        throw new CloneFailure(`cannot open the template's snapshot: ${(error as Error).message}`);
      }
    }
    let vm: StartedVm;
    try {
      vm = await this.startVm({
        dir: config.dir,
        accel,
        deadline,
        inheritStdio: config.stdio === 'inherit',
        snapshotFd: stateFd,
        args: (stdio) => qemuArgs({
          ...guest, dir: config.dir, accel, agentPorts: AGENT_PORTS, stdio, image: disk ?? files.image,
          ...(template && { everyStdioPort: true, incoming: true, memory: { path: template.ram, shared: false } }),
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
      if (template && what && !what.timedOut && (what.cause instanceof CloneFailure || what.qemuEnded)) {
        throw new CloneFailure((error as Error).message);
      }
      throw error;
    }
    vm.child.unref();
    const handle: QemuHandle = template ? { ...vm.handle, template: template.key } : vm.handle;
    return new QemuSandbox(handle, vm.client, () => this.cleanup(handle), () => this.vmGone(handle));
  }

  /** Restores the template's snapshot (QEMU inherited it as SNAPSHOT_FD) into a clone that has just started. */
  private async restore(qmpPath: string, signal: AbortSignal): Promise<void> {
    let qmp: QmpClient | undefined;
    try {
      qmp = await untilListening(() => QmpClient.connect(qmpPath), signal);
      await restoreSnapshot(qmp, SNAPSHOT_FD);
    } catch (error) {
      if (signal.aborted) return;
      throw new CloneFailure(`cannot restore the template's snapshot: ${(error as Error).message}`);
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
      throw new CloneFailure(`the restored guest refused the host's time and entropy: ${(error as Error).message}`);
    }
  }

  /**
   * Spawns QEMU and waits for the agent's greeting, then `ready`; on any failure QEMU is ended, its files are
   * removed (the disk is the caller's) and the error says why, in the guest's or QEMU's own words where it can.
   */
  private async startVm(start: VmStart): Promise<StartedVm> {
    const { dir, accel, deadline } = start;
    const files = vmFiles(dir);
    const log = openSync(files.log, 'w', 0o600);
    let inherited: ReturnType<typeof inheritableStdio>;
    try {
      inherited = start.inheritStdio ? inheritableStdio(log) : { stdio: {}, fds: ['ignore', log, log] };
    } catch (error) {
      closeSync(log);
      if (start.snapshotFd !== undefined) closeSync(start.snapshotFd);
      throw error;
    }
    const fds = inherited.fds;
    if (start.snapshotFd !== undefined) {
      while (fds.length < SNAPSHOT_FD) fds.push('ignore');
      fds[SNAPSHOT_FD] = start.snapshotFd;
    }
    const args = start.args(inherited.stdio);
    const umask = process.umask(0o177); // QEMU's sockets (and files) are made 0600 from the start
    let child: ChildProcess;
    try {
      // In the VM's directory: QEMU binds its sockets there by name (qemu-command.ts).
      child = spawn(QEMU_BINARY, args, { detached: true, stdio: fds, cwd: dir });
    } finally {
      process.umask(umask);
      closeSync(log);
      if (start.snapshotFd !== undefined) closeSync(start.snapshotFd);
    }
    let qemuRan = true;
    const exited = new Promise<string>((resolve) => {
      child.once('error', (error) => {
        qemuRan = false;
        resolve(`cannot run ${QEMU_BINARY}: ${error.message}`);
      });
      child.once('exit', () => resolve(tail(files.log, 3) || 'QEMU exited'));
    });
    const handle: QemuHandle = {
      driver: 'qemu',
      pid: child.pid ?? 0,
      startTime: (child.pid && processStartTime(child.pid)) || '',
      dir,
      agentPorts: AGENT_PORTS,
      accel,
      rootfsFstype: ROOTFS_FSTYPE,
    };
    const abort = new AbortController();
    // A probe's guest must greet by the probe's deadline; then the start has until the VM's.
    let waitingUntil = start.probe?.greetBy ?? deadline;
    const timeout = (): NodeJS.Timeout => setTimeout(() => abort.abort(new Error('timeout')), Math.max(0, waitingUntil.at - Date.now()));
    let timer = timeout();
    let greeted = false;
    void exited.then((why) => abort.abort(new SandboxError(`the microVM (accel ${accel}) failed to start: ${why}`)));
    start.spawned?.(abort.signal).catch((error: unknown) => abort.abort(error));
    try {
      const lease = await leasePort(dir, AGENT_PORTS);
      try {
        const socket = await untilListening(() => openSession(agentPortSocket(dir, lease.index), abort.signal), abort.signal);
        const client = clientOnSession(socket, lease);
        greeted = true;
        const aborted = new Promise<never>((_, reject) => {
          if (abort.signal.aborted) reject(abort.signal.reason);
          abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true });
        });
        aborted.catch(() => {}); // QEMU's exit aborts it long after a start that went well
        try {
          if (start.probe) {
            start.probe.kvm.settle(true);
            clearTimeout(timer);
            waitingUntil = deadline;
            timer = timeout();
          }
          await Promise.race([start.ready?.(client, inherited.stdio), aborted]);
        } catch (error) {
          client.close();
          throw error;
        }
        return { child, handle, client, exited };
      } catch (error) {
        lease.release();
        throw error;
      }
    } catch (error) {
      let message = error instanceof Error ? error.message : String(error);
      // A QEMU that fails at start-up may drop its sockets before it has exited: its own words say more.
      const why = await Promise.race([exited, sleep(500).then(() => undefined)]);
      const timedOut = message === 'timeout';
      if (why !== undefined && !timedOut) {
        const console = tail(files.console, 3);
        message = `the microVM (accel ${accel}) failed to start: ${why}${console ? `; console: ${console}` : ''}`;
      }
      if (timedOut) {
        const state = await queryRunState(files.qmp);
        const console = tail(files.console, 3);
        message = `the guest did not report ready within ${waitingUntil.seconds} s (accel ${accel}${state ? `, VM ${state}` : ''})` +
          (console ? `; console: ${console}` : '; the console is silent');
      }
      child.kill('SIGKILL');
      await Promise.race([exited, sleep(2000)]);
      removeVmFiles(handle, true);
      throw new VmStartError(message, { cause: error, timedOut, qemuEnded: why !== undefined, qemuRan, greeted });
    } finally {
      clearTimeout(timer);
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
        const socket = await openSession(agentPortSocket(vm.dir, lease.index), AbortSignal.timeout(GREETING_TIMEOUT_MS));
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

  /**
   * A boot whose caller died before it was recorded: a booting guest powers itself off with nobody attached, but a
   * clone still waiting for its restore never runs at all. Ends its QEMU and removes its files.
   */
  hostOutlook(): Record<string, string> {
    const { accel, why } = accelOutlook();
    return { 'io.runbox.driver.qemu.accel': accel, 'io.runbox.driver.qemu.accel.why': why };
  }

  async abandonedBoot(dir: string): Promise<void> {
    const pids = killProcessesUnder(basename(QEMU_BINARY), dir);
    for (const until = Date.now() + 2000; pids.some((pid) => processStartTime(pid)) && Date.now() < until;) await sleep(10);
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
    removeVmFiles(vm);
  }
}
