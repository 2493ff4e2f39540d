// The qemu driver: every container in a microVM of its own (QEMU `-M microvm`), under a guest kernel, with the
// runbox agent as the guest's init. The VM lives from create until the container's init exits (the agent then
// powers it off) or until delete; QEMU itself holds the caller's stdio for the container, so a runc-style
// `create` needs nothing else on the host to outlive the CLI.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { isatty } from 'node:tty';
import {
  SandboxError, type Driver, type DriverCapabilities, type Sandbox, type SandboxConfig, type SandboxHandle,
} from './driver.js';
import { guestAssets, type GuestAssets } from './guest-assets.js';
import { isProcessAlive, processStartTime } from './host-process.js';
import { ACCEL_ANNOTATION, parseAccelChoice, planAccel, recordKvmVerdict, type Accel } from './qemu-accel.js';
import { agentPortSocket, clientOnSession, leasePort, openSession } from './qemu-agent-port.js';
import { QEMU_BINARY, qemuArgs, vmFiles, type InheritedStdio } from './qemu-command.js';
import { vmResources } from './qemu-resources.js';
import { queryRunState, quitQemu } from './qemu-qmp.js';
import { ExitedSandbox, QemuSandbox, type QemuHandle } from './qemu-sandbox.js';
import { createRootfsDisk, fillRootfsDisk, ROOTFS_FSTYPE } from './rootfs-image.js';

/** Ports for host clients: this many runbox invocations (or a shim and invocations) may talk to one VM at once. */
export const AGENT_PORTS = 4;
/** The annotation (else RUNBOX_QEMU_BOOT_TIMEOUT) that sets how long a guest may take to report ready, in seconds. */
export const BOOT_TIMEOUT_ANNOTATION = 'io.runbox.qemu.boot-timeout';
const DEFAULT_BOOT_TIMEOUT_S = 30;
/** A KVM that has not been proven gets this long to boot a guest before auto settles for TCG. */
const KVM_PROBE_TIMEOUT_S = 10;
/** A later invocation waits this long for the agent's greeting on a port before it tries again. */
const GREETING_TIMEOUT_MS = 3000;
const CONNECT_TIMEOUT_MS = 30_000;

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
  const stdio: InheritedStdio = {};
  const fds: Array<number | 'ignore'> = ['ignore', log, log, 'ignore', 'ignore', 'ignore'];
  const stdin = kind(0);
  if (stdin === 'socket') [stdio.stdin, fds[3]] = [{ kind: 'socket', fd: 3 }, 0];
  else if (stdin === 'file') [stdio.stdin, fds[0]] = [{ kind: 'stdio' }, 0];
  for (const [name, fd, qemuFd] of [['stdout', 1, 4], ['stderr', 2, 5]] as const) {
    const what = kind(fd);
    if (what === undefined) continue;
    stdio[name] = { kind: what === 'socket' ? 'socket' : 'file', fd: qemuFd };
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
  };

  async boot(config: SandboxConfig): Promise<Sandbox> {
    let assets: GuestAssets;
    let plan: { accel: Accel; probe: boolean };
    try {
      assets = guestAssets();
      plan = planAccel(parseAccelChoice(config.spec.annotations?.[ACCEL_ANNOTATION] ?? process.env.RUNBOX_QEMU_ACCEL));
    } catch (error) {
      throw new SandboxError((error as Error).message);
    }
    const timeout = bootTimeoutSeconds(config);
    const disk = vmFiles(config.dir).image;
    let image: Promise<void> | undefined;
    // Built while the guest boots, which reads the disk only when the container is created; started once QEMU
    // is: starting mkfs forks this process, which would hold QEMU's own start back by as long.
    const buildImage = (): Promise<void> => {
      if (!image) {
        image = fillRootfsDisk(config.spec.root!.path, disk);
        image.catch(() => {}); // a launch that fails first leaves it unawaited
      }
      return image;
    };
    try {
      createRootfsDisk(config.spec.root!.path, disk);
      if (plan.probe) {
        try {
          const sandbox = await this.launch(config, assets, buildImage, 'kvm', KVM_PROBE_TIMEOUT_S);
          recordKvmVerdict(true);
          return sandbox;
        } catch {
          recordKvmVerdict(false);
        }
      }
      return await this.launch(config, assets, buildImage, plan.accel, timeout);
    } catch (error) {
      await image?.catch(() => {}); // it removes its own files when it ends, whatever the outcome
      rmSync(disk, { force: true });
      throw error instanceof SandboxError ? error : new SandboxError((error as Error).message);
    }
  }

  /**
   * Starts QEMU and waits for the agent's greeting and the rootfs image; on any failure nothing of the VM is left
   * but the disk (boot's).
   */
  private async launch(config: SandboxConfig, assets: GuestAssets, buildImage: () => Promise<void>, accel: Accel, timeoutS: number): Promise<Sandbox> {
    const files = vmFiles(config.dir);
    const log = openSync(files.log, 'w', 0o600);
    let inherited: ReturnType<typeof inheritableStdio>;
    try {
      inherited = config.stdio === 'inherit' ? inheritableStdio(log) : { stdio: {}, fds: ['ignore', log, log] };
    } catch (error) {
      closeSync(log);
      throw error;
    }
    const args = qemuArgs({
      dir: config.dir,
      accel,
      resources: vmResources(config.spec),
      kernel: process.env.RUNBOX_QEMU_KERNEL ?? assets.kernel,
      initrd: process.env.RUNBOX_QEMU_INITRD ?? assets.initrd,
      cmdline: assets.cmdline,
      agentPorts: AGENT_PORTS,
      stdio: inherited.stdio,
      image: files.image,
    });
    const umask = process.umask(0o177); // QEMU's sockets (and files) are made 0600 from the start
    let child: ChildProcess;
    try {
      child = spawn(QEMU_BINARY, args, { detached: true, stdio: inherited.fds });
    } finally {
      process.umask(umask);
      closeSync(log);
    }
    const image = buildImage();
    const exited = new Promise<string>((resolve) => {
      child.once('error', (error) => resolve(`cannot run ${QEMU_BINARY}: ${error.message}`));
      child.once('exit', () => resolve(tail(files.log, 3) || 'QEMU exited'));
    });
    const handle: QemuHandle = {
      driver: 'qemu',
      pid: child.pid ?? 0,
      startTime: (child.pid && processStartTime(child.pid)) || '',
      dir: config.dir,
      agentPorts: AGENT_PORTS,
      accel,
      rootfsFstype: ROOTFS_FSTYPE,
    };
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error('timeout')), timeoutS * 1000);
    void exited.then((why) => abort.abort(new SandboxError(`the microVM (accel ${accel}) failed to start: ${why}`)));
    image.catch((error: unknown) => abort.abort(error));
    try {
      const lease = await leasePort(config.dir, AGENT_PORTS);
      try {
        const socket = await this.firstSession(agentPortSocket(config.dir, lease.index), abort.signal);
        try {
          await image;
        } catch (error) {
          socket.destroy();
          throw error;
        }
        const client = clientOnSession(socket, lease);
        child.unref();
        return new QemuSandbox(handle, client, () => this.cleanup(handle), () => this.vmGone(handle));
      } catch (error) {
        lease.release();
        throw error;
      }
    } catch (error) {
      let message = error instanceof SandboxError ? error.message : (error as Error).message;
      // A QEMU that fails at start-up may drop its sockets before it has exited: its own words say more.
      const why = await Promise.race([exited, sleep(500).then(() => undefined)]);
      if (why !== undefined && message !== 'timeout') {
        const console = tail(files.console, 3);
        message = `the microVM (accel ${accel}) failed to start: ${why}${console ? `; console: ${console}` : ''}`;
      }
      if (message === 'timeout') {
        const state = await queryRunState(files.qmp);
        const console = tail(files.console, 3);
        message = `the guest did not report ready within ${timeoutS} s (accel ${accel}${state ? `, VM ${state}` : ''})` +
          (console ? `; console: ${console}` : '; the console is silent');
      }
      child.kill('SIGKILL');
      await Promise.race([exited, sleep(2000)]);
      removeVmFiles(handle, true);
      throw new SandboxError(message);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The boot's session: QEMU makes its sockets a moment after it starts; until then there is nothing to reach. */
  private async firstSession(path: string, signal: AbortSignal): Promise<Socket> {
    for (;;) {
      try {
        return await openSession(path, signal);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (signal.aborted || (code !== 'ENOENT' && code !== 'ECONNREFUSED')) throw error;
        await sleep(5);
      }
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
