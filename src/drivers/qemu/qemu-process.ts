// Spawning and watching a microVM's QEMU: the stdio it holds for the container, its log and console, the wait for
// the agent's greeting (or for a KVM probe's), and what a start that failed left and why, in QEMU's and the
// guest's own words. The qemu driver decides what to start (booted, restored, a template, a probe); this file
// starts it.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Socket } from 'node:net';
import { isatty } from 'node:tty';
import type { AgentClient } from '../../agent-client/agent-client.js';
import type { Spec } from '../../oci/spec.js';
import { SandboxError, VmStartError } from '../../errors/errors.js';
import { processStartTime } from '../../host/host-process.js';
import { withoutHugePages } from '../../host/huge-pages.js';
import { untilListening } from '../../host/until-listening.js';
import type { KvmProbe } from './kvm-probe.js';
import type { Accel } from './qemu-accel.js';
import { agentPortLock, agentPortSocket, clientOnSession, leasePort, openSession } from './qemu-agent-port.js';
import { QEMU_BINARY, vmFiles, type InheritedStdio } from './qemu-command.js';
import { queryRunState } from './qemu-qmp.js';
import type { QemuHandle } from './qemu-sandbox.js';
import { ROOTFS_FSTYPE } from './rootfs-image.js';

/** Ports for host clients: this many runbox invocations (or a shim and invocations) may talk to one VM at once. */
export const AGENT_PORTS = 4;

/** The access mode bits of an open file's flags (Linux's; Node's fs.constants lacks them). */
const O_ACCMODE = 0o3;
/** The fd a clone's QEMU reads its template's snapshot from: after the caller's stdio (inheritableStdio). */
export const SNAPSHOT_FD = 6;
/** The first of the fds a driver built on this one hands QEMU (VmStart.inherit), after the snapshot's. */
export const EXTRA_FD_BASE = SNAPSHOT_FD + 1;

/** When a VM start gives up: `seconds` after it was set, which the error names. */
export interface Deadline {
  at: number;
  seconds: number;
}

/** The annotation (else RUNBOX_QEMU_BOOT_TIMEOUT) that sets how long a guest may take to report ready, in seconds. */
export const BOOT_TIMEOUT_ANNOTATION = 'io.runbox.qemu.boot-timeout';
const DEFAULT_BOOT_TIMEOUT_S = 30;

/** How long a VM's guest may take to greet: BOOT_TIMEOUT_ANNOTATION, else RUNBOX_QEMU_BOOT_TIMEOUT, else 30 s. */
export function bootTimeoutSeconds(spec: Spec): number {
  const raw = spec.annotations?.[BOOT_TIMEOUT_ANNOTATION] ?? process.env.RUNBOX_QEMU_BOOT_TIMEOUT;
  if (raw === undefined) return DEFAULT_BOOT_TIMEOUT_S;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new SandboxError(`invalid qemu boot timeout "${raw}" (expected seconds > 0)`);
  return seconds;
}

export function deadlineIn(seconds: number): Deadline {
  return { at: Date.now() + seconds * 1000, seconds };
}

export interface VmStart {
  dir: string;
  accel: Accel;
  deadline: Deadline;
  /** Whether QEMU holds the caller's stdio for the container (inheritableStdio), or the VM has none. */
  inheritStdio: boolean;
  /** QEMU's command line, given the stdio it holds. */
  args(stdio: InheritedStdio): string[];
  /**
   * The network namespace QEMU runs in, for its NIC's tap: a pod's (its file), a throwaway one of its own
   * (`private`: a template's, whose tap goes with it), or runbox's own when absent.
   */
  netns?: string;
  /** The template's snapshot, which QEMU inherits as SNAPSHOT_FD (closed here once spawned). */
  snapshotFd?: number;
  /** Runs once QEMU is spawned, alongside the wait for the greeting: a rejection ends the start. */
  spawned?(signal: AbortSignal): Promise<unknown>;
  /** Runs on the greeted session; the VM has started once it has resolved. */
  ready?(client: AgentClient, stdio: InheritedStdio): Promise<void>;
  /** A KVM probe's: the guest is to greet by then (the start times out otherwise), and the probe settles when it has. */
  probe?: { greetBy: Deadline; kvm: KvmProbe };
  /** More open files QEMU inherits, as fds EXTRA_FD_BASE, EXTRA_FD_BASE + 1…; the caller closes its own. */
  inherit?: Array<number | Socket>;
  /** The command that runs QEMU's argv (by default, QEMU itself): it must end by exec'ing QEMU in the same process. */
  launcher?: (argv: string[]) => string[];
}

/** A start on KVM that tells KVM cannot run the guest here: QEMU ran, and ended or timed out before any greeting. */
export function kvmFailed(error: unknown): error is VmStartError {
  if (!(error instanceof VmStartError)) return false;
  const { qemuRan, greeted, qemuEnded, timedOut } = error.what;
  return qemuRan && !greeted && (qemuEnded || timedOut);
}

export interface StartedVm {
  child: ChildProcess;
  handle: QemuHandle;
  client: AgentClient;
  /** Resolves when QEMU has exited, with why. */
  exited: Promise<string>;
}

/** An fd's file status flags, access mode included (/proc/self/fdinfo: octal); undefined when it is closed. */
function fileStatusFlags(fd: number): number | undefined {
  try {
    const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
    return flags === undefined ? undefined : parseInt(flags, 8);
  } catch {
    return undefined;
  }
}

/**
 * A stdout or stderr that is a regular file open for reading and writing (`1<>FILE`, Python's `w+`) cannot be
 * shared with QEMU 7.2: an fd set hands a chardev only a write-only open file (the access modes must match), and the
 * chardevs that open one read-write also read from it, from the caller's offset; reopened through /proc/self/fd, it
 * would be written at QEMU's own offset, over what the caller writes after it. Refused, unless it is open for
 * appending: then every write goes to the end whoever makes it, and a reopened file with O_APPEND does the same.
 */
export function refuseReadWriteOutput(id: string): void {
  for (const [name, fd] of [['stdout', 1], ['stderr', 2]] as const) {
    const flags = fileStatusFlags(fd);
    if (flags === undefined || (flags & O_ACCMODE) !== constants.O_RDWR || flags & constants.O_APPEND) continue;
    let regular = false;
    try {
      regular = fstatSync(fd).isFile();
    } catch {
      continue;
    }
    if (!regular) continue;
    let path = `fd ${fd}`;
    try {
      path = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // The fd's number names it then.
    }
    throw new SandboxError(
      `the qemu driver cannot write the container's ${name} to ${path}, a regular file open for reading and writing: ` +
      'QEMU would write it at an offset of its own, over what is written there after it; open it write-only (> or >>) or for appending, or use a pipe',
      { containerId: id },
    );
  }
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
  // An fd set hands QEMU only write-only files.
  const writeOnly = (fd: number): boolean => ((fileStatusFlags(fd) ?? O_ACCMODE) & O_ACCMODE) === constants.O_WRONLY;
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
export function removeVmFiles(handle: Pick<QemuHandle, 'dir' | 'agentPorts'>, keepDisk = false): void {
  const files = vmFiles(handle.dir);
  for (const path of [files.qmp, files.exit, files.console, files.log]) rmSync(path, { force: true });
  if (!keepDisk) for (const path of [files.image, files.diskEnd]) rmSync(path, { force: true });
  for (let i = 0; i < handle.agentPorts; i++) {
    rmSync(agentPortSocket(handle.dir, i), { force: true });
    rmSync(agentPortLock(handle.dir, i), { force: true });
  }
}

/**
 * Spawns QEMU and waits for the agent's greeting, then `ready`; on any failure QEMU is ended, its files are
 * removed (the disk is the caller's) and the error says why, in the guest's or QEMU's own words where it can.
 */
export async function startVm(start: VmStart): Promise<StartedVm> {
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
  const fds: Array<number | Socket | 'ignore'> = inherited.fds;
  if (start.snapshotFd !== undefined) {
    while (fds.length < SNAPSHOT_FD) fds.push('ignore');
    fds[SNAPSHOT_FD] = start.snapshotFd;
  }
  if (start.inherit?.length) {
    while (fds.length < EXTRA_FD_BASE) fds.push('ignore');
    fds.push(...start.inherit);
  }
  const qemu = [QEMU_BINARY, ...start.args(inherited.stdio)];
  // unshare and nsenter exec QEMU in the namespace, as a driver's launcher does after its own work: the child's
  // pid is QEMU's.
  const argv = start.netns === undefined ? qemu
    : start.netns === 'private' ? ['unshare', '--net', ...qemu]
    : ['nsenter', `--net=${start.netns}`, ...qemu];
  const [command, ...args] = start.launcher ? start.launcher(argv) : argv;
  const umask = process.umask(0o177); // QEMU's sockets (and files) are made 0600 from the start
  let child: ChildProcess;
  try {
    // In the VM's directory: QEMU binds its sockets there by name (qemu-command.ts).
    const spawnQemu = () => spawn(command!, args, { detached: true, stdio: fds, cwd: dir });
    // QEMU asks for huge pages for TCG's code buffer and buffers of its own, where each 2 MiB page would count
    // whole in its memory however little of it is used (docs/microvm.md).
    child = accel === 'tcg' ? withoutHugePages(spawnQemu) : spawnQemu();
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
