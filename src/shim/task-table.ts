// The shim's tasks: every container of its group and their exec'd processes, each in containerd's task states
// (created → running ⇄ paused → stopped), and the one sandbox they all run in, booted by the first Create.
import { mkdirSync } from 'node:fs';
import { basename } from 'node:path';
import { driverRegistry } from '../drivers/drivers.js';
import { RpcError } from '../errors/errors.js';
import { hostProcesses, type ProcessTable } from '../host/host-process.js';
import { OCI_VERSION, type Process, type Spec, type Status } from '../oci/spec.js';
import { StatusCode } from '../rpc/status-code.js';
import type { Driver, DriverRegistry, ExitStatus, Sandbox } from '../sandbox/driver.js';
import type { TaskTopic } from './event-forwarder.js';
import type { FifoIo } from './fifo-io.js';
import type { RuntimeConfig } from './runtime-config.js';
import { sandboxDir } from './shim-socket.js';

/** containerd.v1.types.Status */
export const TASK_STATUS = { created: 1, running: 2, stopped: 3, paused: 4 } as const;
export type TaskState = keyof typeof TASK_STATUS;

export interface TaskProcess {
  containerId: string;
  /** '' for the container's init process. */
  execId: string;
  pid: number;
  state: TaskState;
  io: FifoIo;
  exit?: ExitStatus;
  exited: Promise<ExitStatus>;
  markExited(exit: ExitStatus): void;
  /** An exec's process description, run at Start. */
  process?: Process;
}

export interface TaskContainer {
  id: string;
  bundle: string;
  spec: Spec;
  rootfsMounted: boolean;
  init: TaskProcess;
  execs: Map<string, TaskProcess>;
  /** An OOM kill seen while its start was still under way: told right after TaskStart, which containerd wants first. */
  oomBeforeStart?: boolean;
}

export interface BootedSandbox {
  sandbox: Sandbox;
  driver: Driver;
  dir: string;
}

export interface TaskServiceOptions {
  /** The shim's private directory (see shimStateDir): the sandbox's files go there; removed at the end. */
  stateDir: string;
  /** Where the task events go (EventForwarder: to containerd). */
  events: { publish(topic: TaskTopic, event: object): void };
  log: (message: string) => void;
  /** Called when Shutdown finds no task left: the shim then exits. */
  onShutdown: () => void;
  /** Where drivers come from: drivers/drivers.ts unless given. */
  drivers?: DriverRegistry;
  /** What a task's pid names: the host's processes unless given. */
  processes?: ProcessTable;
}

export function newProcess(containerId: string, execId: string, io: FifoIo): TaskProcess {
  let markExited!: (exit: ExitStatus) => void;
  const exited = new Promise<ExitStatus>((resolve) => (markExited = resolve));
  const process: TaskProcess = { containerId, execId, pid: 0, state: 'created', io, exited, markExited: () => {} };
  process.markExited = (exit) => {
    process.exit = exit;
    process.state = 'stopped';
    markExited(exit);
  };
  return process;
}

export class TaskTable {
  readonly containers = new Map<string, TaskContainer>();
  readonly drivers: DriverRegistry;
  readonly processes: ProcessTable;
  private sandbox: Promise<BootedSandbox> | undefined;

  constructor(readonly options: TaskServiceOptions) {
    this.drivers = options.drivers ?? driverRegistry;
    this.processes = options.processes ?? hostProcesses;
  }

  container(id: string): TaskContainer {
    const container = this.containers.get(id);
    if (!container) throw new RpcError(StatusCode.NOT_FOUND, `container ${id}: not found`);
    return container;
  }

  process(id: string, execId: string | undefined): TaskProcess {
    const container = this.container(id);
    if (!execId) return container.init;
    const exec = container.execs.get(execId);
    if (!exec) throw new RpcError(StatusCode.NOT_FOUND, `container ${id}: exec ${execId} not found`);
    return exec;
  }

  /** The shim's sandbox, booted for the container `id` by its first Create. */
  bootSandbox(id: string, spec: Spec, config: RuntimeConfig, bundle?: string): Promise<BootedSandbox> {
    this.sandbox ??= (async () => {
      const driver = await this.drivers.forSpec(spec.annotations, config.driver);
      const dir = sandboxDir(this.options.stateDir);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      let sandbox: Sandbox;
      try {
        sandbox = await driver.boot({
          id: basename(this.options.stateDir), dir, stdio: 'null', endsWithCaller: true, spec, ...(bundle !== undefined && { bundle }), log: (message) => this.options.log(`container ${id}: ${message}`),
        });
      } finally {
        this.drivers.sandboxBooted?.();
      }
      // Its directory is the record that containerd's `shim delete` searches after a shim that died.
      await sandbox.recorded();
      // Published at once, so that containerd has TaskOOM before the TaskExit of the process it killed.
      await sandbox.onOom?.((containerId) => {
        const container = this.containers.get(containerId);
        if (!container) return;
        if (container.init.state === 'created') container.oomBeforeStart = true;
        else this.options.events.publish('oom', { containerId });
      });
      return { sandbox, driver, dir };
    })();
    // A sandbox that failed to boot is tried again by the next Create.
    this.sandbox.catch(() => (this.sandbox = undefined));
    return this.sandbox;
  }

  /** The sandbox a task that exists runs in (its Create booted it). */
  booted(): Promise<BootedSandbox> {
    return this.sandbox!;
  }

  /** The sandbox if one was booted, for the end of the shim. */
  async bootedIfAny(): Promise<BootedSandbox | undefined> {
    return this.sandbox?.catch(() => undefined);
  }

  /** The state JSON a container's hooks get on stdin. */
  stateJson(container: TaskContainer, status: Status): string {
    return JSON.stringify({
      ociVersion: container.spec.ociVersion || OCI_VERSION,
      id: container.id,
      status,
      pid: status === 'stopped' ? 0 : container.init.pid,
      bundle: container.bundle,
      annotations: container.spec.annotations ?? {},
    });
  }
}
