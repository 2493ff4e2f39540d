// The one interface through which the runtime and the shim reach a sandbox, whatever isolates it: Linux
// namespaces (emulated), a microVM (qemu) or an enclave. Nothing above this layer knows which.
import type { LinuxResources } from '../oci/linux-resources.js';
import type { Process, Spec } from '../oci/spec.js';

export type Isolation = 'namespaces' | 'vm' | 'enclave';

export interface DriverCapabilities {
  isolation: Isolation;
  /** One line for `features` and logs, honest about the boundary. */
  description: string;
  pause: boolean;
  exec: boolean;
  terminal: boolean;
  /** The container runs under a kernel of its own. */
  ownKernel: boolean;
  /** linux.cgroupsPath and linux.resources become the container's cgroups (and `update` changes them). */
  cgroups?: boolean;
  /** seccomp's SCMP_ACT_NOTIFY reaches a host process (the spec's listenerPath). */
  seccompNotify?: boolean;
  /** The largest state JSON (bytes) the sandbox can hand a container's createContainer and startContainer hooks. */
  hookStateLimit: number;
}

export interface SandboxConfig {
  id: string;
  /** A private directory (mode 0700) for the sandbox's sockets and files; removed by the caller after destroy. */
  dir: string;
  /**
   * The caller's stdio, handed to the first container that asks for `inherit`: with a runc-style `create`, the
   * container's output goes where the caller's went, long after the caller exited.
   */
  stdio: 'inherit' | 'null';
  /** The first container's spec: the sandbox is sized from it (resources, annotations). */
  spec: Spec;
  /** The first container's bundle directory (what its annotations name relative paths to). */
  bundle?: string;
  /**
   * runc's process tree, for callers that reap what they start (containerd's runc shim, a child subreaper): the
   * container's init, and processes exec'd later without a stdio stream, become children of the booting
   * process, so they pass to the caller's subreaper when it exits. The sandbox still sees them exit, without
   * their status. Drivers whose processes cannot be host children (a VM) ignore it.
   */
  callerReaps?: boolean;
  /**
   * The sandbox is its caller's for as long as the caller lives (a shim's, not a runc-style `create`'s, whose
   * container outlives the CLI): what the driver starts for it on the host (a VM's QEMU) dies with the caller,
   * however the caller dies, even before anything recorded it.
   */
  endsWithCaller?: boolean;
  /**
   * The caller's log (runc's --log, the shim's log), for what the user of a boot that succeeded should still be
   * told: one line, a warning (the qemu driver's KVM that was tried and not used).
   */
  log?: (message: string) => void;
}

/** What a later process needs to reach a booted sandbox again: plain JSON, stored with the container state. */
export interface SandboxHandle {
  driver: string;
  [key: string]: unknown;
}

export type StdioMode = 'inherit' | 'stream' | 'null';

export interface ContainerConfig {
  id: string;
  /** The bundle directory: relative bind-mount sources are relative to it. */
  bundle: string;
  /** Validated, with root.path absolute. */
  spec: Spec;
  stdio: StdioMode;
  consoleSocket?: string;
  /** No hook runs between create and finishCreate: the sandbox finishes the create at once, and no finishCreate follows. */
  finish?: boolean;
}

export interface ExecConfig {
  containerId: string;
  execId: string;
  process: Process;
  stdio: StdioMode;
  consoleSocket?: string;
}

export interface ExitStatus {
  /** The exit code, or 128 + the signal that ended the process. */
  exitStatus: number;
  exitedAt: Date;
}

export type ProcessState = 'creating' | 'created' | 'running' | 'stopped';

export interface ProcessStatus {
  containerId: string;
  /** Absent for a container's init process. */
  execId?: string;
  pid: number;
  status: ProcessState;
  exit?: ExitStatus;
}

export interface Stats {
  cpuNs: number;
  rssBytes: number;
  pids: number;
}

/** Output of a process whose stdio is relayed by the driver (`stream`); null marks end of file. */
export interface ProcessOutput {
  stdout(data: Buffer | null): void;
  stderr(data: Buffer | null): void;
}

export interface RunningProcess {
  pid: number;
  writeStdin(data: Buffer): void;
  closeStdin(): void;
}

export interface Sandbox {
  readonly handle: SandboxHandle;

  /**
   * Creates a container's init process in its namespaces with its mounts, and stops where the runtime's
   * prestart and createRuntime hooks are due (before pivot_root). Returns the pid the host sees.
   */
  createContainer(config: ContainerConfig, output?: ProcessOutput): Promise<RunningProcess>;
  /**
   * Runs the createContainer hooks, enters the rootfs and waits for start. The state JSON is for those hooks:
   * absent when there are none (it may be large: the annotations are in it).
   */
  finishCreate(id: string, stateJson?: string): Promise<void>;
  /** Runs the startContainer hooks (given the state JSON; absent when there are none) and the user program. */
  startContainer(id: string, stateJson?: string): Promise<void>;
  exec(config: ExecConfig, output?: ProcessOutput): Promise<RunningProcess>;
  signal(id: string, signal: number, options?: { execId?: string; all?: boolean }): Promise<void>;
  wait(id: string, execId?: string): Promise<ExitStatus>;
  processes(id?: string): Promise<ProcessStatus[]>;
  ps(id: string): Promise<number[]>;
  stats(id: string): Promise<Stats>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  resize(id: string, execId: string | undefined, width: number, height: number): Promise<void>;
  deleteContainer(id: string): Promise<void>;
  /** Changes a live container's resource limits (runtime-spec LinuxResources); absent or errno 95 where the driver cannot. */
  update?(id: string, resources: LinuxResources): Promise<void>;
  /**
   * Calls listener with the container's id whenever the kernel's OOM killer acts in it, from now on; a process
   * it killed has its exit reported (wait) after the call. Absent where the driver cannot tell.
   */
  onOom?(listener: (containerId: string) => void): Promise<void>;
  /**
   * The caller has recorded the sandbox (its handle, its directory) where a later process will find it: from
   * now on the sandbox outlives the process that booted it. Until then, where the driver can, a sandbox ends
   * with that process, so that a caller killed before it recorded the sandbox leaves nothing behind.
   */
  recorded(): Promise<void>;
  /** Ends the sandbox and everything in it. */
  destroy(): Promise<void>;
  /** Drops this process's connection; the sandbox goes on. */
  disconnect(): void;
}

export interface Driver {
  readonly name: string;
  readonly capabilities: DriverCapabilities;
  boot(config: SandboxConfig): Promise<Sandbox>;
  connect(handle: SandboxHandle): Promise<Sandbox>;
  /** Whether the sandbox is still there, cheaply, without connecting. */
  isAlive(handle: SandboxHandle): boolean;
  /** Ends whatever is left of a sandbox that cannot be reached any more. */
  cleanup(handle: SandboxHandle): Promise<void>;
  /**
   * Ends what a boot left in the sandbox's directory when its caller died before the sandbox was recorded, or
   * when the record can no longer be read: found from the directory alone.
   */
  abandonedBoot?(dir: string): Promise<void>;
  /** What this driver would give a sandbox on this host, and why, as `features` annotations (NAME → value). */
  hostOutlook?(): Record<string, string>;
}

/**
 * Where the runtime and the shim get their drivers: drivers/drivers.ts (the unit tests give a fake driver's).
 * Loading a driver may load its module tree: only operations that reach a sandbox ask.
 */
export interface DriverRegistry {
  /** The driver for a new container: its config.json annotation, else the caller's choice (a flag), else the default. */
  forSpec(annotations: Record<string, string> | undefined, choice: string | undefined): Promise<Driver>;
  /** The driver of this name (as recorded with a container: Driver.name). */
  named(name: string): Promise<Driver>;
  /** Asks every driver to end what a sandbox left in `dir` when its record is missing or cannot be read. */
  endAbandoned(dir: string, warn: (message: string) => void): Promise<void>;
  /**
   * Called once a shim's sandbox has booted (or failed to): what a driver kept ready in this process for it (a
   * pooled shim's restored VM) and it did not take is let go.
   */
  sandboxBooted?(): void;
}
