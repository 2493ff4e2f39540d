// containerd's Task service (containerd.task.v2.Task, and the same messages as task.v3) for the containers of
// one shim: one sandbox per shim process, booted at the first Create, every container of the group in it. The
// service drives the sandbox through the driver interface in-process, as the CLI's runtime does. Create, Start
// and Delete have files of their own; the task table (task-table.ts) holds the tasks and their states.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, RpcError } from '../errors/errors.js';
import { validateResources, type LinuxResources } from '../oci/linux-resources.js';
import type { Process } from '../oci/spec.js';
import { encodeAny } from '../rpc/protos.js';
import type { ServiceImplementation } from '../rpc/service.js';
import { StatusCode } from '../rpc/status-code.js';
import { removeBundleRecord } from './bundle-record.js';
import { timestamp } from './event-forwarder.js';
import { FifoIo } from './fifo-io.js';
import { unmountRootfs } from './rootfs-mounts.js';
import { rpcErrorOf } from './rpc-status.js';
import { createTask } from './task-create.js';
import { deleteTask } from './task-delete.js';
import { startTask } from './task-start.js';
import { newProcess, TASK_STATUS, TaskTable, type TaskServiceOptions, type TaskState } from './task-table.js';

export class TaskService {
  private readonly tasks: TaskTable;

  constructor(private readonly options: TaskServiceOptions) {
    this.tasks = new TaskTable(options);
  }

  /** Whether any task (container) is left: the shim stays while there is. */
  get taskCount(): number {
    return this.tasks.containers.size;
  }

  implementation(): ServiceImplementation {
    const { tasks } = this;
    const methods: ServiceImplementation = {
      Create: (r) => createTask(tasks, r),
      Start: (r) => startTask(tasks, r),
      State: async (r) => this.state(r),
      Wait: (r) => this.wait(r),
      Kill: (r) => this.kill(r),
      Delete: (r) => deleteTask(tasks, r),
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
    const booted = await this.tasks.bootedIfAny();
    for (const container of this.tasks.containers.values()) {
      container.init.io.close();
      for (const exec of container.execs.values()) exec.io.close();
    }
    if (booted) await booted.sandbox.destroy().catch(() => {});
    for (const container of this.tasks.containers.values()) {
      if (container.rootfsMounted) await unmountRootfs(join(container.bundle, 'rootfs'));
      removeBundleRecord(container.bundle);
    }
    rmSync(this.options.stateDir, { recursive: true, force: true });
  }

  private state(request: { id: string; execId: string }): object {
    const container = this.tasks.container(request.id);
    const process = this.tasks.process(request.id, request.execId);
    const { paths } = process.io;
    return {
      id: process.execId || container.id, bundle: container.bundle, pid: process.pid, status: TASK_STATUS[process.state],
      stdin: paths.stdin, stdout: paths.stdout, stderr: paths.stderr, terminal: paths.terminal,
      exitStatus: process.exit?.exitStatus ?? 0, exitedAt: process.exit ? timestamp(process.exit.exitedAt) : undefined,
      execId: process.execId,
    };
  }

  private async wait(request: { id: string; execId: string }): Promise<object> {
    const exit = await this.tasks.process(request.id, request.execId).exited;
    return { exitStatus: exit.exitStatus, exitedAt: timestamp(exit.exitedAt) };
  }

  private async kill(request: { id: string; execId: string; signal: number; all: boolean }): Promise<object> {
    const process = this.tasks.process(request.id, request.execId);
    if (process.state === 'stopped') throw new RpcError(StatusCode.NOT_FOUND, `container ${request.id}: process already finished`);
    if (process.execId && process.state === 'created') throw new RpcError(StatusCode.FAILED_PRECONDITION, `container ${request.id}: exec ${process.execId} was not started`);
    const { sandbox } = await this.tasks.booted();
    try {
      await sandbox.signal(request.id, request.signal, { ...(process.execId ? { execId: process.execId } : {}), all: request.all });
    } catch (error) {
      throw rpcErrorOf(error);
    }
    return {};
  }

  private async exec(request: {
    id: string; execId: string; terminal: boolean; stdin: string; stdout: string; stderr: string; spec?: { typeUrl: string; value: Buffer };
  }): Promise<object> {
    const container = this.tasks.container(request.id);
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
    const container = this.tasks.container(request.id);
    if (container.init.state === 'stopped') return { processes: [] };
    const { sandbox } = await this.tasks.booted();
    try {
      return { processes: (await sandbox.ps(container.id)).map((pid) => ({ pid })) };
    } catch (error) {
      throw rpcErrorOf(error);
    }
  }

  private async freeze(request: { id: string }, pause: boolean): Promise<object> {
    const container = this.tasks.container(request.id);
    const { sandbox, driver } = await this.tasks.booted();
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
    const process = this.tasks.process(request.id, request.execId);
    if (process.state === 'stopped') return {};
    const { sandbox } = await this.tasks.booted();
    try {
      await sandbox.resize(request.id, process.execId || undefined, request.width, request.height);
    } catch (error) {
      throw rpcErrorOf(error);
    }
    return {};
  }

  private closeIo(request: { id: string; execId: string; stdin: boolean }): object {
    const process = this.tasks.process(request.id, request.execId);
    if (request.stdin) process.io.closeStdin();
    return {};
  }

  private async stats(request: { id: string }): Promise<object> {
    const container = this.tasks.container(request.id);
    const { sandbox } = await this.tasks.booted();
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
    const container = this.tasks.container(request.id);
    let resources: LinuxResources;
    try {
      resources = validateResources(JSON.parse(request.resources?.value.toString('utf8') ?? ''), 'resources');
    } catch (error) {
      throw new RpcError(StatusCode.INVALID_ARGUMENT, `container ${request.id}: update: invalid resources: ${describe(error)}`);
    }
    const { sandbox, driver } = await this.tasks.booted();
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
    return { shimPid: process.pid, taskPid: this.tasks.containers.get(request.id)?.init.pid ?? 0, version: '2' };
  }

  private shutdown(): object {
    if (this.tasks.containers.size === 0) setImmediate(this.options.onShutdown);
    return {};
  }
}
