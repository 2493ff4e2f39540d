// containerd's Task service (containerd.task.v2.Task, and the same messages as task.v3) for the containers of
// one shim: one sandbox per shim process, booted at the first Create, every container of the group in it. The
// service drives the sandbox through the driver interface in-process, as the CLI's runtime does.
import { mkdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { chooseDriverName, DRIVER_ANNOTATION, getDriver } from '../drivers/drivers.js';
import { type Driver, type ExitStatus, type Sandbox } from '../sandbox/driver.js';
import { processStartTime } from '../host/host-process.js';
import { validateResources, type LinuxResources } from '../oci/linux-resources.js';
import { loadSpec } from '../oci/load-spec.js';
import { OCI_VERSION, type Process, type Spec, type Status } from '../oci/spec.js';
import { encodeAny } from '../rpc/protos.js';
import type { ServiceImplementation } from '../rpc/service.js';
import { StatusCode } from '../rpc/status-code.js';
import { describe, RpcError } from '../errors/errors.js';
import { createStopsForHooks, passCreateHookPoint, runHooksReportingFailures } from '../runtime/hooks.js';
import { removeBundleRecord, writeBundleRecord } from './bundle-record.js';
import { timestamp, type EventForwarder } from './event-forwarder.js';
import { FifoIo } from './fifo-io.js';
import { mountRootfs, unmountRootfs, type Mount } from './rootfs-mounts.js';
import { rpcErrorOf } from './rpc-status.js';
import { runtimeConfig, type RuntimeConfig } from './runtime-config.js';
import { sandboxDir } from './shim-socket.js';

/** containerd.v1.types.Status */
const TASK_STATUS = { created: 1, running: 2, stopped: 3, paused: 4 } as const;
type TaskState = keyof typeof TASK_STATUS;

/** How long an exit waits for the process's last output before it is reported anyway. */
const OUTPUT_DRAIN_MS = 10_000;

interface TaskProcess {
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

interface TaskContainer {
  id: string;
  bundle: string;
  spec: Spec;
  rootfsMounted: boolean;
  init: TaskProcess;
  execs: Map<string, TaskProcess>;
}

export interface TaskServiceOptions {
  /** The shim's private directory (see shimStateDir): the sandbox's files go there; removed at the end. */
  stateDir: string;
  events: EventForwarder;
  log: (message: string) => void;
  /** Called when Shutdown finds no task left: the shim then exits. */
  onShutdown: () => void;
}

function newProcess(containerId: string, execId: string, io: FifoIo): TaskProcess {
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

export class TaskService {
  private readonly containers = new Map<string, TaskContainer>();
  private sandbox: Promise<{ sandbox: Sandbox; driver: Driver; dir: string }> | undefined;

  constructor(private readonly options: TaskServiceOptions) {}

  /** Whether any task (container) is left: the shim stays while there is. */
  get taskCount(): number {
    return this.containers.size;
  }

  implementation(): ServiceImplementation {
    const methods: ServiceImplementation = {
      Create: (r) => this.create(r),
      Start: (r) => this.start(r),
      State: async (r) => this.state(r),
      Wait: (r) => this.wait(r),
      Kill: (r) => this.kill(r),
      Delete: (r) => this.delete(r),
      Exec: (r) => this.exec(r),
      Pids: (r) => this.pids(r),
      Pause: (r) => this.freeze(r, true),
      Resume: (r) => this.freeze(r, false),
      ResizePty: (r) => this.resizePty(r),
      CloseIO: async (r) => this.closeIo(r),
      Update: (r) => this.update(r),
      Stats: (r) => this.stats(r),
      Connect: async (r) => this.connect(r),
      Shutdown: async () => this.shutdown(),
      Checkpoint: async () => {
        throw new RpcError(StatusCode.UNIMPLEMENTED, 'checkpoint is not supported by any runbox driver yet');
      },
    };
    // A malformed request (an empty id where one is needed) is the caller's error, never a crash.
    for (const [name, method] of Object.entries(methods)) {
      if (name === 'Shutdown' || name === 'Checkpoint') continue;
      methods[name] = (request, context) => {
        if (typeof request?.id !== 'string' || request.id === '') throw new RpcError(StatusCode.INVALID_ARGUMENT, `${name}: id must not be empty`);
        return method(request, context);
      };
    }
    return methods;
  }

  /** Ends the sandbox and everything in it (shim exit). */
  async destroy(): Promise<void> {
    const booted = await this.sandbox?.catch(() => undefined);
    for (const container of this.containers.values()) {
      container.init.io.close();
      for (const exec of container.execs.values()) exec.io.close();
    }
    if (booted) await booted.sandbox.destroy().catch(() => {});
    for (const container of this.containers.values()) {
      if (container.rootfsMounted) await unmountRootfs(join(container.bundle, 'rootfs'));
      removeBundleRecord(container.bundle);
    }
    rmSync(this.options.stateDir, { recursive: true, force: true });
  }

  // ---- lookup ------------------------------------------------------------------------------------------------

  private container(id: string): TaskContainer {
    const container = this.containers.get(id);
    if (!container) throw new RpcError(StatusCode.NOT_FOUND, `container ${id}: not found`);
    return container;
  }

  private process(id: string, execId: string | undefined): TaskProcess {
    const container = this.container(id);
    if (!execId) return container.init;
    const exec = container.execs.get(execId);
    if (!exec) throw new RpcError(StatusCode.NOT_FOUND, `container ${id}: exec ${execId} not found`);
    return exec;
  }

  /** The shim's sandbox, booted for the container `id` by its first Create. */
  private async bootedSandbox(id: string, spec: Spec, config: RuntimeConfig): Promise<{ sandbox: Sandbox; driver: Driver; dir: string }> {
    this.sandbox ??= (async () => {
      const driver = await getDriver(chooseDriverName(spec.annotations?.[DRIVER_ANNOTATION], config.driver));
      const dir = sandboxDir(this.options.stateDir);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const sandbox = await driver.boot({
        id: basename(this.options.stateDir), dir, stdio: 'null', spec, log: (message) => this.options.log(`container ${id}: ${message}`),
      });
      // Its directory is the record that containerd's `shim delete` searches after a shim that died.
      await sandbox.recorded();
      // Published at once, so that containerd has TaskOOM before the TaskExit of the process it killed.
      await sandbox.onOom?.((containerId) => {
        if (this.containers.has(containerId)) this.options.events.publish('oom', { containerId });
      });
      return { sandbox, driver, dir };
    })();
    // A sandbox that failed to boot is tried again by the next Create.
    this.sandbox.catch(() => (this.sandbox = undefined));
    return this.sandbox;
  }

  private stateJson(container: TaskContainer, status: Status): string {
    return JSON.stringify({
      ociVersion: container.spec.ociVersion || OCI_VERSION,
      id: container.id,
      status,
      pid: status === 'stopped' ? 0 : container.init.pid,
      bundle: container.bundle,
      annotations: container.spec.annotations ?? {},
    });
  }

  // ---- Create, Start -----------------------------------------------------------------------------------------

  private async create(request: {
    id: string; bundle: string; rootfs: Mount[]; terminal: boolean; stdin: string; stdout: string; stderr: string; checkpoint: string;
    options?: { typeUrl: string; value: Uint8Array } | null;
  }): Promise<object> {
    const { id, bundle } = request;
    if (this.containers.has(id)) throw new RpcError(StatusCode.ALREADY_EXISTS, `container ${id}: already exists`);
    if (request.checkpoint) throw new RpcError(StatusCode.UNIMPLEMENTED, 'restoring from a checkpoint is not supported');
    let spec: Spec;
    let config: RuntimeConfig;
    try {
      config = runtimeConfig(request.options);
      spec = loadSpec(bundle);
      spec.annotations = { ...config.annotations, ...spec.annotations };
    } catch (error) {
      throw rpcErrorOf(error);
    }
    const io = new FifoIo({ stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal });
    const container: TaskContainer = { id, bundle, spec, rootfsMounted: false, init: newProcess(id, '', io), execs: new Map() };
    // Reserved now: a second Create of the same id while this one runs is refused.
    this.containers.set(id, container);
    let created = false;
    let sandbox: Sandbox | undefined;
    try {
      if (request.rootfs.length) {
        await mountRootfs(request.rootfs, spec.root!.path);
        container.rootfsMounted = true;
      }
      const booted = await this.bootedSandbox(id, spec, config);
      sandbox = booted.sandbox;
      const stopsForHooks = createStopsForHooks(spec.hooks);
      const init = await sandbox.createContainer({ id, bundle, spec, stdio: 'stream', finish: !stopsForHooks }, io);
      created = true;
      container.init.pid = init.pid;
      io.attachStdin(init);
      if (stopsForHooks) await passCreateHookPoint(sandbox, id, spec.hooks, this.stateJson(container, 'creating'));
      writeBundleRecord(bundle, { sandbox: sandbox.handle, stateDir: this.options.stateDir, pid: init.pid, pidStartTime: processStartTime(init.pid) });
    } catch (error) {
      this.containers.delete(id);
      if (sandbox && created) await sandbox.deleteContainer(id).catch(() => {});
      if (created) await runHooksReportingFailures('poststop', spec.hooks?.poststop, this.stateJson(container, 'stopped'), (e) => this.options.log(e.message));
      io.close();
      if (container.rootfsMounted) await unmountRootfs(spec.root!.path);
      throw rpcErrorOf(error);
    }
    this.options.events.publish('create', {
      containerId: id, bundle, rootfs: request.rootfs,
      io: { stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal },
      pid: container.init.pid,
    });
    return { pid: container.init.pid };
  }

  private async start(request: { id: string; execId: string }): Promise<object> {
    const container = this.container(request.id);
    const process = this.process(request.id, request.execId);
    if (process.state !== 'created') throw new RpcError(StatusCode.FAILED_PRECONDITION, `container ${request.id}: ${request.execId ? `exec ${request.execId}` : 'task'} is ${process.state}, not created`);
    const { sandbox } = await this.sandbox!;
    if (process.execId) {
      if (container.init.state !== 'running') throw new RpcError(StatusCode.FAILED_PRECONDITION, `container ${request.id}: cannot exec in a ${container.init.state} container`);
      try {
        const running = await sandbox.exec({ containerId: container.id, execId: process.execId, process: process.process!, stdio: 'stream' }, process.io);
        process.pid = running.pid;
        process.io.attachStdin(running);
      } catch (error) {
        process.markExited({ exitStatus: 255, exitedAt: new Date() });
        throw rpcErrorOf(error);
      }
      process.state = 'running';
      this.options.events.publish('exec-started', { containerId: container.id, execId: process.execId, pid: process.pid });
    } else {
      try {
        await sandbox.startContainer(container.id, container.spec.hooks?.startContainer?.length ? this.stateJson(container, 'created') : undefined);
      } catch (error) {
        await sandbox.signal(container.id, 9, { all: true }).catch(() => {});
        throw rpcErrorOf(error);
      } finally {
        process.state = 'running';
        this.watchExit(sandbox, process);
      }
      this.options.events.publish('start', { containerId: container.id, pid: process.pid });
      await runHooksReportingFailures('poststart', container.spec.hooks?.poststart, this.stateJson(container, 'running'),
        (error) => this.options.log(`container ${container.id}: ${error.message}`));
      return { pid: process.pid };
    }
    this.watchExit(sandbox, process);
    return { pid: process.pid };
  }

  /** Reports the process's exit once it happened and its last output is out: Wait returns, TaskExit is sent. */
  private watchExit(sandbox: Sandbox, process: TaskProcess): void {
    void (async () => {
      let exit: ExitStatus;
      try {
        exit = await sandbox.wait(process.containerId, process.execId || undefined);
      } catch (error) {
        this.options.log(`container ${process.containerId}: waiting for ${process.execId || 'init'}: ${describe(error)}`);
        exit = { exitStatus: 255, exitedAt: new Date() };
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([process.io.drained, new Promise((resolve) => (timer = setTimeout(resolve, OUTPUT_DRAIN_MS)))]);
      clearTimeout(timer);
      process.io.close();
      process.markExited(exit);
      this.options.events.publish('exit', {
        containerId: process.containerId, id: process.execId || process.containerId, pid: process.pid,
        exitStatus: exit.exitStatus, exitedAt: timestamp(exit.exitedAt),
      });
    })();
  }

  // ---- State, Wait, Kill, Delete -----------------------------------------------------------------------------

  private state(request: { id: string; execId: string }): object {
    const container = this.container(request.id);
    const process = this.process(request.id, request.execId);
    const { paths } = process.io;
    return {
      id: process.execId || container.id, bundle: container.bundle, pid: process.pid, status: TASK_STATUS[process.state],
      stdin: paths.stdin, stdout: paths.stdout, stderr: paths.stderr, terminal: paths.terminal,
      exitStatus: process.exit?.exitStatus ?? 0, exitedAt: process.exit ? timestamp(process.exit.exitedAt) : undefined,
      execId: process.execId,
    };
  }

  private async wait(request: { id: string; execId: string }): Promise<object> {
    const exit = await this.process(request.id, request.execId).exited;
    return { exitStatus: exit.exitStatus, exitedAt: timestamp(exit.exitedAt) };
  }

  private async kill(request: { id: string; execId: string; signal: number; all: boolean }): Promise<object> {
    const process = this.process(request.id, request.execId);
    if (process.state === 'stopped') throw new RpcError(StatusCode.NOT_FOUND, `container ${request.id}: process already finished`);
    if (process.execId && process.state === 'created') throw new RpcError(StatusCode.FAILED_PRECONDITION, `container ${request.id}: exec ${process.execId} was not started`);
    const { sandbox } = await this.sandbox!;
    try {
      await sandbox.signal(request.id, request.signal, { ...(process.execId ? { execId: process.execId } : {}), all: request.all });
    } catch (error) {
      throw rpcErrorOf(error);
    }
    return {};
  }

  private async delete(request: { id: string; execId: string }): Promise<object> {
    const container = this.container(request.id);
    const process = this.process(request.id, request.execId);
    if (process.state === 'running' || process.state === 'paused') {
      throw new RpcError(StatusCode.FAILED_PRECONDITION, `container ${request.id}: cannot delete a ${process.state} process`);
    }
    if (process.execId) {
      container.execs.delete(process.execId);
      process.io.close();
      return this.deleteResponse(process);
    }
    const { sandbox } = await this.sandbox!;
    this.containers.delete(container.id);
    await sandbox.deleteContainer(container.id).catch((error) => this.options.log(`container ${container.id}: ${describe(error)}`));
    // A task deleted before it ran (or whose exit is not reported yet) ends now.
    if (!process.exit) process.markExited({ exitStatus: 137, exitedAt: new Date() });
    for (const exec of container.execs.values()) exec.io.close();
    process.io.close();
    await runHooksReportingFailures('poststop', container.spec.hooks?.poststop, this.stateJson(container, 'stopped'),
      (error) => this.options.log(`container ${container.id}: ${error.message}`));
    if (container.rootfsMounted) await unmountRootfs(container.spec.root!.path);
    removeBundleRecord(container.bundle);
    const response = this.deleteResponse(process);
    this.options.events.publish('delete', { containerId: container.id, id: container.id, ...response });
    return response;
  }

  private deleteResponse(process: TaskProcess): { pid: number; exitStatus: number; exitedAt: { seconds: number; nanos: number } } {
    const exit = process.exit ?? { exitStatus: 0, exitedAt: new Date() };
    return { pid: process.pid, exitStatus: exit.exitStatus, exitedAt: timestamp(exit.exitedAt) };
  }

  // ---- Exec, Pids, Pause/Resume, ResizePty, CloseIO, Stats, Connect, Shutdown ----------------------------------

  private async exec(request: {
    id: string; execId: string; terminal: boolean; stdin: string; stdout: string; stderr: string; spec?: { typeUrl: string; value: Buffer };
  }): Promise<object> {
    const container = this.container(request.id);
    if (!request.execId) throw new RpcError(StatusCode.INVALID_ARGUMENT, `container ${request.id}: exec id must not be empty`);
    if (container.execs.has(request.execId)) throw new RpcError(StatusCode.ALREADY_EXISTS, `container ${request.id}: exec ${request.execId} already exists`);
    if (container.init.state !== 'running') throw new RpcError(StatusCode.FAILED_PRECONDITION, `container ${request.id}: cannot exec in a ${container.init.state} container`);
    let process: Process;
    try {
      process = JSON.parse(request.spec?.value.toString('utf8') ?? '') as Process;
      if (!Array.isArray(process.args) || process.args.length === 0) throw new Error('args must not be empty');
    } catch (error) {
      throw new RpcError(StatusCode.INVALID_ARGUMENT, `container ${request.id}: exec ${request.execId}: invalid process spec: ${describe(error)}`);
    }
    process.terminal = request.terminal;
    const io = new FifoIo({ stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal });
    const exec = newProcess(container.id, request.execId, io);
    exec.process = process;
    container.execs.set(request.execId, exec);
    this.options.events.publish('exec-added', { containerId: container.id, execId: request.execId });
    return {};
  }

  private async pids(request: { id: string }): Promise<object> {
    const container = this.container(request.id);
    if (container.init.state === 'stopped') return { processes: [] };
    const { sandbox } = await this.sandbox!;
    try {
      return { processes: (await sandbox.ps(container.id)).map((pid) => ({ pid })) };
    } catch (error) {
      throw rpcErrorOf(error);
    }
  }

  private async freeze(request: { id: string }, pause: boolean): Promise<object> {
    const container = this.container(request.id);
    const { sandbox, driver } = await this.sandbox!;
    if (!driver.capabilities.pause) throw new RpcError(StatusCode.UNIMPLEMENTED, `the ${driver.name} driver cannot pause containers`);
    const expected: TaskState = pause ? 'running' : 'paused';
    if (container.init.state !== expected) throw new RpcError(StatusCode.FAILED_PRECONDITION, `container ${container.id}: it is ${container.init.state}, not ${expected}`);
    try {
      if (pause) await sandbox.pause(container.id);
      else await sandbox.resume(container.id);
    } catch (error) {
      throw rpcErrorOf(error);
    }
    container.init.state = pause ? 'paused' : 'running';
    this.options.events.publish(pause ? 'paused' : 'resumed', { containerId: container.id });
    return {};
  }

  private async resizePty(request: { id: string; execId: string; width: number; height: number }): Promise<object> {
    const process = this.process(request.id, request.execId);
    if (process.state === 'stopped') return {};
    const { sandbox } = await this.sandbox!;
    try {
      await sandbox.resize(request.id, process.execId || undefined, request.width, request.height);
    } catch (error) {
      throw rpcErrorOf(error);
    }
    return {};
  }

  private closeIo(request: { id: string; execId: string; stdin: boolean }): object {
    const process = this.process(request.id, request.execId);
    if (request.stdin) process.io.closeStdin();
    return {};
  }

  private async stats(request: { id: string }): Promise<object> {
    const container = this.container(request.id);
    const { sandbox } = await this.sandbox!;
    try {
      const stats = await sandbox.stats(container.id);
      return {
        stats: encodeAny('io.containerd.cgroups.v1.Metrics', {
          pids: { current: stats.pids },
          cpu: { usage: { total: stats.cpuNs } },
          memory: { rss: stats.rssBytes, usage: { usage: stats.rssBytes } },
        }),
      };
    } catch (error) {
      throw rpcErrorOf(error);
    }
  }

  /** resources: a runtime-spec LinuxResources as JSON (types.containerd.io/opencontainers/runtime-spec/1/LinuxResources). */
  private async update(request: { id: string; resources?: { typeUrl: string; value: Buffer } }): Promise<object> {
    const container = this.container(request.id);
    let resources: LinuxResources;
    try {
      resources = validateResources(JSON.parse(request.resources?.value.toString('utf8') ?? ''), 'resources');
    } catch (error) {
      throw new RpcError(StatusCode.INVALID_ARGUMENT, `container ${request.id}: update: invalid resources: ${describe(error)}`);
    }
    const { sandbox, driver } = await this.sandbox!;
    if (!sandbox.update || !driver.capabilities.cgroups) throw new RpcError(StatusCode.UNIMPLEMENTED, `the ${driver.name} driver cannot change resource limits`);
    if (container.init.state === 'stopped') throw new RpcError(StatusCode.FAILED_PRECONDITION, `container ${request.id}: cannot update a stopped task`);
    try {
      await sandbox.update(container.id, resources);
    } catch (error) {
      throw rpcErrorOf(error);
    }
    return {};
  }

  private connect(request: { id: string }): object {
    return { shimPid: process.pid, taskPid: this.containers.get(request.id)?.init.pid ?? 0, version: '2' };
  }

  private shutdown(): object {
    if (this.containers.size === 0) setImmediate(this.options.onShutdown);
    return {};
  }
}
