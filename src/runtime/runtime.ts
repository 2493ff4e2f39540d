// The container lifecycle of runtime.md — create, start, state, kill, delete — plus exec, ps, pause, resume and
// update, on top of the driver interface: runc's state machine. Every operation that changes a container holds
// its lock; create and delete have files of their own.
import { resolve } from 'node:path';
import { detailFor, RuntimeError, SandboxError, StateDamageError } from '../errors/errors.js';
import { Errno } from '../errors/errno.js';
import type { LinuxResources } from '../oci/linux-resources.js';
import type { Process } from '../oci/spec.js';
import type { ExitStatus, ProcessOutput, RunningProcess, Sandbox, StdioMode } from '../sandbox/driver.js';
import { validateContainerId } from './container-id.js';
import { createContainer, type CreateOptions, type Relay } from './create-container.js';
import { deleteContainer } from './delete-container.js';
import { runHooksReportingFailures } from './hooks.js';
import { RuntimeContext, type RuntimeOptions } from './runtime-context.js';
import { stateReport, type StateReport } from './state-report.js';
import type { ContainerRecord } from './state-store.js';

export interface ExecOptions {
  process: Process;
  execId?: string;
  stdio: StdioMode;
  consoleSocket?: string;
  output?: ProcessOutput;
}

export class Runtime {
  private readonly context: RuntimeContext;
  /**
   * Containers this process created with a relayed terminal (a foreground run): the connection that carries
   * the pty stays open until the caller releases it.
   */
  private readonly relays = new Map<string, Relay>();

  constructor(options: RuntimeOptions = {}) {
    this.context = new RuntimeContext(options);
  }

  async create(rawId: string, options: CreateOptions): Promise<ContainerRecord> {
    const id = validateContainerId(rawId);
    const { record, relay } = await createContainer(this.context, id, options);
    if (relay) this.relays.set(id, relay);
    return record;
  }

  relayedProcess(id: string): RunningProcess | undefined {
    return this.relays.get(id)?.process;
  }

  /** Passes this terminal's window size to a relayed pty. */
  async resizeRelay(id: string, width: number, height: number): Promise<void> {
    await this.relays.get(id)?.sandbox.resize(id, undefined, width, height);
  }

  releaseRelay(id: string): void {
    this.relays.get(id)?.sandbox.disconnect();
    this.relays.delete(id);
  }

  async start(rawId: string): Promise<void> {
    const id = validateContainerId(rawId);
    const { context } = this;
    await context.withContainer(id, async (record) => {
      const status = context.currentStatus(record);
      if (status === 'running' || status === 'paused') throw new RuntimeError('cannot start an already running container', { containerId: id });
      if (status === 'stopped') throw new RuntimeError('cannot start a container that has stopped', { containerId: id });
      if (status !== 'created') throw new RuntimeError(`cannot start a container in the ${status} state`, { containerId: id });
      const spec = context.store.readConfig(id);
      const sandbox = await context.connect(record);
      try {
        await sandbox.startContainer(id, spec.hooks?.startContainer?.length ? JSON.stringify(stateReport(record, 'created')) : undefined);
      } catch (error) {
        // A failed startContainer hook stops the container (runtime.md step 7); delete finishes the job.
        await sandbox.signal(id, 9, { all: true }).catch(() => {});
        record.status = 'stopped';
        context.store.write(record);
        throw new RuntimeError(detailFor(error, id), { containerId: id, cause: error });
      } finally {
        sandbox.disconnect();
      }
      record.status = 'running';
      context.store.write(record);
      await runHooksReportingFailures('poststart', spec.hooks?.poststart, JSON.stringify(stateReport(record, 'running')),
        (error) => context.logger.warn(`container ${id}: ${error.message}`));
    });
  }

  state(rawId: string): StateReport {
    const record = this.context.record(validateContainerId(rawId));
    return stateReport(record, this.context.currentStatus(record));
  }

  /** Every container whose state can be read; each one that cannot is named in a warning, as runc does. */
  list(): StateReport[] {
    const reports: StateReport[] = [];
    for (const id of this.context.store.ids()) {
      let record: ContainerRecord | undefined;
      try {
        record = this.context.store.read(id);
      } catch (error) {
        if (!(error instanceof StateDamageError)) throw error;
        this.context.logger.warn(error.message);
        continue;
      }
      if (record) reports.push(stateReport(record, this.context.currentStatus(record)));
    }
    return reports;
  }

  async kill(rawId: string, signal: number, all = false): Promise<void> {
    const id = validateContainerId(rawId);
    await this.context.withContainer(id, async (record) => {
      const status = this.context.currentStatus(record);
      if (status === 'stopped' || status === 'creating') throw new RuntimeError('container not running', { containerId: id });
      await this.signal(record, signal, all);
    });
  }

  private async signal(record: ContainerRecord, signal: number, all: boolean): Promise<void> {
    const { context } = this;
    let sandbox: Sandbox;
    try {
      sandbox = await context.connect(record);
    } catch (error) {
      // The sandbox is unreachable but its process lives: signal that process directly.
      if (!context.processes.isAlive(record.pid, record.pidStartTime)) throw new RuntimeError('container not running', { containerId: record.id });
      context.logger.warn(`${(error as Error).message}; signalling pid ${record.pid} directly`);
      context.processes.kill(record.pid, signal);
      return;
    }
    try {
      await sandbox.signal(record.id, signal, { all });
    } catch (error) {
      if (error instanceof SandboxError && error.errno === Errno.ESRCH) throw new RuntimeError('container not running', { containerId: record.id });
      throw error;
    } finally {
      sandbox.disconnect();
    }
  }

  async delete(rawId: string, force = false): Promise<void> {
    await deleteContainer(this.context, validateContainerId(rawId), force);
  }

  /** The process description for exec: the container's own, with what the caller overrides. */
  execProcess(rawId: string, overrides: Partial<Process>): Process {
    const id = validateContainerId(rawId);
    this.context.record(id);
    const base = this.context.store.readConfig(id).process!;
    const { terminal: _terminal, consoleSize: _consoleSize, ...inherited } = base;
    return { ...inherited, ...overrides };
  }

  async exec(rawId: string, options: ExecOptions): Promise<{ process: RunningProcess; sandbox: Sandbox; execId: string }> {
    const id = validateContainerId(rawId);
    const record = this.context.record(id);
    const status = this.context.currentStatus(record);
    if (status !== 'running') throw new RuntimeError(`cannot exec in a ${status} container`, { containerId: id });
    if (!options.process.args?.length) throw new RuntimeError('exec: args must not be empty', { containerId: id });
    const execId = options.execId ?? `exec-${process.pid}-${Date.now().toString(36)}`;
    const sandbox = await this.context.connect(record);
    try {
      const running = await sandbox.exec(
        {
          containerId: id,
          execId,
          process: options.process,
          stdio: options.stdio,
          ...(options.consoleSocket ? { consoleSocket: resolve(options.consoleSocket) } : {}),
        },
        options.output,
      );
      return { process: running, sandbox, execId };
    } catch (error) {
      sandbox.disconnect();
      throw new RuntimeError(detailFor(error, id), { containerId: id, cause: error });
    }
  }

  /** Waits for a container's init (or one exec'd process) to exit; the caller keeps the sandbox connection. */
  async wait(rawId: string, execId?: string): Promise<ExitStatus> {
    const id = validateContainerId(rawId);
    const sandbox = await this.context.connect(this.context.record(id));
    try {
      return await sandbox.wait(id, execId);
    } finally {
      sandbox.disconnect();
    }
  }

  async ps(rawId: string): Promise<number[]> {
    const id = validateContainerId(rawId);
    const record = this.context.record(id);
    if (this.context.currentStatus(record) === 'stopped') return [];
    const sandbox = await this.context.connect(record);
    try {
      return await sandbox.ps(id);
    } finally {
      sandbox.disconnect();
    }
  }

  async pause(rawId: string): Promise<void> {
    await this.freeze(validateContainerId(rawId), true);
  }

  async resume(rawId: string): Promise<void> {
    await this.freeze(validateContainerId(rawId), false);
  }

  private async freeze(id: string, pause: boolean): Promise<void> {
    const { context } = this;
    await context.withContainer(id, async (record) => {
      const status = context.currentStatus(record);
      if (pause && status !== 'running') throw new RuntimeError('container not running', { containerId: id });
      if (!pause && status !== 'paused') throw new RuntimeError('container not paused', { containerId: id });
      const sandbox = await context.connect(record);
      try {
        if (pause) await sandbox.pause(id);
        else await sandbox.resume(id);
      } catch (error) {
        if (error instanceof SandboxError && error.errno === Errno.EOPNOTSUPP) {
          throw new RuntimeError(`the ${record.driver} driver cannot ${pause ? 'pause' : 'resume'} containers here`, { containerId: id });
        }
        throw error;
      } finally {
        sandbox.disconnect();
      }
      record.status = pause ? 'paused' : 'running';
      context.store.write(record);
    });
  }

  /** Changes the resource limits of a created, running or paused container (runc update). */
  async update(rawId: string, resources: LinuxResources): Promise<void> {
    const id = validateContainerId(rawId);
    const { context } = this;
    await context.withContainer(id, async (record) => {
      const status = context.currentStatus(record);
      if (status === 'stopped') throw new RuntimeError('cannot update a stopped container', { containerId: id });
      const cannot = () => new RuntimeError(`the ${record.driver} driver cannot change resource limits`, { containerId: id });
      const sandbox = await context.connect(record);
      try {
        if (!sandbox.update) throw cannot();
        await sandbox.update(id, resources);
      } catch (error) {
        throw error instanceof SandboxError && error.errno === Errno.EOPNOTSUPP ? cannot() : error;
      } finally {
        sandbox.disconnect();
      }
    });
  }
}
