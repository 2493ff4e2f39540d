// The container lifecycle of runtime.md — create, start, state, kill, delete — plus exec, ps, pause and resume,
// on top of the driver interface. Every operation that changes a container holds its lock.
import { hrtime } from 'node:process';
import { resolve } from 'node:path';
import {
  SandboxError, type Driver, type ExitStatus, type ProcessOutput, type RunningProcess, type Sandbox, type StdioMode,
} from '../sandbox/driver.js';
import { isProcessAlive, processStartTime } from '../host/host-process.js';
import type { LinuxResources } from '../oci/linux-resources.js';
import { loadSpec, SpecError } from '../oci/load-spec.js';
import { OCI_VERSION, type Process, type Spec, type State, type Status } from '../oci/spec.js';
import { writeFileAtomic } from '../host/atomic-file.js';
import { validateContainerId } from './container-id.js';
import type { FileLock } from '../host/file-lock.js';
import { describe, RuntimeError } from './errors.js';
import { createStopsForHooks, passCreateHookPoint, runHooksReportingFailures, sandboxHooksNeedState } from './hooks.js';
import { silentLogger, type Logger } from '../host/logger.js';
import { StateDamageError } from './state-damage.js';
import { StateStore, type ContainerRecord } from './state-store.js';
import { DEFAULT_ROOT } from '../generated/facts.js';

export { DEFAULT_ROOT };

export interface RuntimeOptions {
  root?: string;
  /** The --driver flag; RUNBOX_DRIVER and the config.json annotation are consulted too. */
  driver?: string;
  logger?: Logger;
}

export interface CreateOptions {
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  /** Where the container's stdio goes when it has no terminal: this process's own (runc's way), or nowhere. */
  stdio?: 'inherit' | 'null';
  /** For a terminal without a console socket (a foreground run): the pty is relayed through this process. */
  relayTerminal?: ProcessOutput;
  /**
   * A detached create, as runc does it: the init (and later detached execs) become children of this process,
   * reaped by the caller's subreaper once it exits (see SandboxConfig.callerReaps). Nobody can wait for the
   * exit status through runbox then; `state` still tells when the process has exited.
   */
  callerReaps?: boolean;
}

export interface ExecOptions {
  process: Process;
  execId?: string;
  stdio: StdioMode;
  consoleSocket?: string;
  output?: ProcessOutput;
}

/** The runtime-spec state plus runc's extra fields, in runc's order. */
export interface StateReport extends State {
  rootfs: string;
  created: string;
  owner: string;
}

function rfc3339Nano(): string {
  const now = Date.now();
  const nanos = String(now % 1000 * 1_000_000 + Number(hrtime.bigint() % 1_000_000n)).padStart(9, '0');
  return new Date(now).toISOString().replace(/\.\d{3}Z$/, `.${nanos}Z`);
}

export class Runtime {
  readonly store: StateStore;
  private readonly logger: Logger;

  constructor(private readonly options: RuntimeOptions = {}) {
    this.store = new StateStore(resolve(options.root ?? DEFAULT_ROOT));
    this.logger = options.logger ?? silentLogger;
  }

  // ---- create ----------------------------------------------------------------------------------------------

  async create(rawId: string, options: CreateOptions): Promise<ContainerRecord> {
    const id = validateContainerId(rawId);
    const bundle = resolve(options.bundle);
    const spec = this.loadSpec(bundle);
    const process = spec.process!;
    const relay = process.terminal && !options.consoleSocket ? options.relayTerminal : undefined;
    if (process.terminal && !options.consoleSocket && !relay) {
      throw new RuntimeError(`container ${id}: cannot allocate tty if runbox will detach without setting console socket`);
    }
    if (!process.terminal && options.consoleSocket) {
      throw new RuntimeError(`container ${id}: cannot use console socket if runbox will not detach or allocate tty`);
    }
    const driver = await this.driverForSpec(spec, id);

    const record: ContainerRecord = {
      ociVersion: spec.ociVersion || OCI_VERSION,
      id,
      status: 'creating',
      pid: 0,
      bundle,
      rootfs: spec.root!.path,
      created: rfc3339Nano(),
      owner: '',
      annotations: spec.annotations ?? {},
      // The driver that runs it, resolved: `auto` may mean something else by the time the container is deleted.
      driver: driver.name,
    };
    this.refuseOversizedHookState(record, spec, driver);

    const lock = await this.store.reserve(id);
    let sandbox: Sandbox | undefined;
    let hooksBegun = false;
    try {
      this.store.writeConfig(id, spec);
      this.store.write(record);
      sandbox = await driver.boot({
        id,
        dir: this.store.dir(id),
        stdio: process.terminal ? 'null' : (options.stdio ?? 'inherit'),
        spec,
        ...(options.callerReaps ? { callerReaps: true } : {}),
        log: (message) => this.logger.warn(`container ${id}: ${message}`),
      });
      record.sandbox = sandbox.handle;
      // Recorded at once: a CLI killed from here on leaves a sandbox that delete can find and end. Until the
      // sandbox is told, it ends with this process.
      this.store.write(record);
      await sandbox.recorded();
      this.logger.debug(`container ${id}: ${driver.name} sandbox booted: ${JSON.stringify(sandbox.handle)}`);
      const stdio: StdioMode = process.terminal ? (options.consoleSocket ? 'null' : 'stream') : (options.stdio ?? 'inherit');
      const stopsForHooks = createStopsForHooks(spec.hooks);
      const init = await sandbox.createContainer(
        { id, bundle, spec, stdio, ...(options.consoleSocket ? { consoleSocket: resolve(options.consoleSocket) } : {}), finish: !stopsForHooks },
        relay,
      );
      record.pid = init.pid;
      record.pidStartTime = processStartTime(init.pid);
      if (stopsForHooks) {
        this.logger.debug(`container ${id}: init process ${init.pid} ready for the create hooks`);
        this.store.write(record);
        hooksBegun = true;
        await passCreateHookPoint(sandbox, id, spec.hooks, JSON.stringify(this.report(record, 'creating')));
      }

      record.status = 'created';
      this.store.write(record);
      if (options.pidFile) writeFileAtomic(resolve(options.pidFile), String(record.pid), 0o644, false);
      if (relay) {
        this.relays.set(id, { sandbox, process: init });
        sandbox = undefined;
      }
      return record;
    } catch (error) {
      await this.undoCreate(record, driver, sandbox, hooksBegun ? spec : undefined);
      throw new RuntimeError(`container ${id}: ${describe(error).replace(new RegExp(`^container ${id}: `), '')}`);
    } finally {
      sandbox?.disconnect();
      lock.release();
    }
  }

  /** A state JSON the sandbox's hooks could not be given refuses the create before anything is made. */
  private refuseOversizedHookState(record: ContainerRecord, spec: Spec, driver: Driver): void {
    if (!sandboxHooksNeedState(spec.hooks)) return;
    // The pid is not known yet: room for the longest one.
    const bytes = Buffer.byteLength(JSON.stringify(this.report(record, 'created'))) + String(2 ** 22).length;
    const limit = driver.capabilities.hookStateLimit;
    if (bytes > limit) {
      throw new RuntimeError(
        `container ${record.id}: the state its createContainer and startContainer hooks would be given is ${bytes} bytes ` +
        `(the annotations are in it), more than the ${driver.name} driver carries to them (${limit})`,
      );
    }
  }

  /**
   * Containers this process created with a relayed terminal (a foreground run): the connection that carries
   * the pty stays open until the caller releases it.
   */
  private readonly relays = new Map<string, { sandbox: Sandbox; process: RunningProcess }>();

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

  private async undoCreate(record: ContainerRecord, driver: Driver, sandbox: Sandbox | undefined, spec: Spec | undefined) {
    try {
      if (sandbox) await sandbox.destroy();
      else if (record.sandbox) await driver.cleanup(record.sandbox);
    } catch (error) {
      this.logger.warn(`container ${record.id}: cleaning up after a failed create: ${describe(error)}`);
    }
    this.killLeftover(record);
    if (spec) await this.runPoststop(record, spec);
    this.store.remove(record.id);
  }

  // ---- start -----------------------------------------------------------------------------------------------

  async start(rawId: string): Promise<void> {
    const id = validateContainerId(rawId);
    await this.withContainer(id, async (record) => {
      const status = this.currentStatus(record);
      if (status === 'running' || status === 'paused') throw new RuntimeError(`container ${id}: cannot start an already running container`);
      if (status === 'stopped') throw new RuntimeError(`container ${id}: cannot start a container that has stopped`);
      if (status !== 'created') throw new RuntimeError(`container ${id}: cannot start a container in the ${status} state`);
      const spec = this.store.readConfig(id);
      const sandbox = await this.connect(record);
      try {
        await sandbox.startContainer(id, spec.hooks?.startContainer?.length ? JSON.stringify(this.report(record, 'created')) : undefined);
      } catch (error) {
        // A failed startContainer hook stops the container (runtime.md step 7); delete finishes the job.
        await sandbox.signal(id, 9, { all: true }).catch(() => {});
        record.status = 'stopped';
        this.store.write(record);
        throw new RuntimeError(`container ${id}: ${describe(error).replace(new RegExp(`^container ${id}: `), '')}`);
      } finally {
        sandbox.disconnect();
      }
      record.status = 'running';
      this.store.write(record);
      await runHooksReportingFailures('poststart', spec.hooks?.poststart, JSON.stringify(this.report(record, 'running')),
        (error) => this.logger.warn(`container ${id}: ${error.message}`));
    });
  }

  // ---- state and list --------------------------------------------------------------------------------------

  state(rawId: string): StateReport {
    const id = validateContainerId(rawId);
    const record = this.store.read(id);
    if (!record) throw new RuntimeError(`container ${id} does not exist`);
    return this.report(record, this.currentStatus(record));
  }

  /** Every container whose state can be read; each one that cannot is named in a warning, as runc does. */
  list(): StateReport[] {
    const reports: StateReport[] = [];
    for (const id of this.store.ids()) {
      let record: ContainerRecord | undefined;
      try {
        record = this.store.read(id);
      } catch (error) {
        if (!(error instanceof StateDamageError)) throw error;
        this.logger.warn(error.message);
        continue;
      }
      if (record) reports.push(this.report(record, this.currentStatus(record)));
    }
    return reports;
  }

  /** The truth about a container now: whatever was recorded, a container whose process is gone is stopped. */
  currentStatus(record: ContainerRecord): Status {
    if (record.status === 'creating' || record.status === 'stopped') return record.status;
    return isProcessAlive(record.pid, record.pidStartTime) ? record.status : 'stopped';
  }

  private report(record: ContainerRecord, status: Status): StateReport {
    return {
      ociVersion: record.ociVersion,
      id: record.id,
      pid: status === 'stopped' ? 0 : record.pid,
      status,
      bundle: record.bundle,
      rootfs: record.rootfs,
      created: record.created,
      owner: record.owner,
      annotations: record.annotations ?? {},
    };
  }

  // ---- kill --------------------------------------------------------------------------------------------------

  async kill(rawId: string, signal: number, all = false): Promise<void> {
    const id = validateContainerId(rawId);
    await this.withContainer(id, async (record) => {
      const status = this.currentStatus(record);
      if (status === 'stopped' || status === 'creating') throw new RuntimeError(`container ${id}: container not running`);
      await this.signal(record, signal, all);
    });
  }

  private async signal(record: ContainerRecord, signal: number, all: boolean): Promise<void> {
    let sandbox: Sandbox;
    try {
      sandbox = await this.connect(record);
    } catch (error) {
      // The sandbox is unreachable but its process lives: signal that process directly.
      if (!isProcessAlive(record.pid, record.pidStartTime)) throw new RuntimeError(`container ${record.id}: container not running`);
      this.logger.warn(`container ${record.id}: ${describe(error)}; signalling pid ${record.pid} directly`);
      process.kill(record.pid, signal);
      return;
    }
    try {
      await sandbox.signal(record.id, signal, { all });
    } catch (error) {
      if (error instanceof SandboxError && error.errno === 3) throw new RuntimeError(`container ${record.id}: container not running`);
      throw error;
    } finally {
      sandbox.disconnect();
    }
  }

  // ---- delete ------------------------------------------------------------------------------------------------

  async delete(rawId: string, force = false): Promise<void> {
    const id = validateContainerId(rawId);
    const lock = await this.store.lock(id);
    if (!lock) {
      if (force) return;
      throw new RuntimeError(`container ${id} does not exist`);
    }
    try {
      let record: ContainerRecord;
      try {
        record = this.store.read(id)!;
      } catch (error) {
        if (!force || !(error instanceof StateDamageError)) throw error;
        this.logger.warn(`container ${id}: ${error.damage}: ending what its directory holds`);
        await this.endUnrecorded(id);
        this.store.remove(id);
        return;
      }
      const status = this.currentStatus(record);
      // runtime.md: deleting a container that is not stopped is an error (runc deletes a created one anyway).
      if ((status === 'running' || status === 'paused' || status === 'created') && !force) {
        throw new RuntimeError(`container ${id}: cannot delete container ${id} that is not stopped: ${status}`);
      }
      await this.destroy(record);
      let spec: Spec | undefined;
      try {
        spec = this.store.readConfig(id);
      } catch {
        spec = undefined;
      }
      if (spec && status !== 'creating') await this.runPoststop(record, spec);
      this.store.remove(id);
    } finally {
      lock.release();
    }
  }

  /** Ends the container and its sandbox, reachable or not. */
  private async destroy(record: ContainerRecord): Promise<void> {
    if (record.sandbox) {
      const driver = await this.driver(record.driver, record.id);
      if (driver.isAlive(record.sandbox)) {
        try {
          const sandbox = await driver.connect(record.sandbox);
          await sandbox.deleteContainer(record.id).catch(() => {});
          await sandbox.destroy();
        } catch (error) {
          this.logger.warn(`container ${record.id}: ${describe(error)}`);
        }
      }
      await driver.cleanup(record.sandbox);
    } else if (record.status === 'creating') {
      // Its create died during the boot (a live one would hold the container's lock).
      const driver = await this.driver(record.driver, record.id);
      await driver.abandonedBoot?.(this.store.dir(record.id));
    }
    this.killLeftover(record);
  }

  /**
   * Ends what a container whose state cannot be read left in its directory, found from the directory alone by
   * every driver (an agent working there, a QEMU whose files are there, the cgroups recorded there): never
   * through the record, which may name another container's sandbox.
   */
  private async endUnrecorded(id: string): Promise<void> {
    const { endAbandonedSandboxes } = await import('../drivers/drivers.js');
    const failures: string[] = [];
    await endAbandonedSandboxes(this.store.dir(id), (message) => failures.push(message));
    if (failures.length) throw new RuntimeError(`container ${id}: ${failures.join('; ')}`);
  }

  /** Whatever the sandbox did, the container's own process must not survive its deletion. */
  private killLeftover(record: ContainerRecord): void {
    if (record.pid > 0 && isProcessAlive(record.pid, record.pidStartTime)) {
      try {
        process.kill(record.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  private async runPoststop(record: ContainerRecord, spec: Spec): Promise<void> {
    await runHooksReportingFailures('poststop', spec.hooks?.poststop, JSON.stringify(this.report(record, 'stopped')),
      (error) => this.logger.warn(`container ${record.id}: ${error.message}`));
  }

  // ---- exec, ps, wait, pause, resume -----------------------------------------------------------------------

  /** The process description for exec: the container's own, with what the caller overrides. */
  execProcess(rawId: string, overrides: Partial<Process>): Process {
    const id = validateContainerId(rawId);
    if (!this.store.read(id)) throw new RuntimeError(`container ${id} does not exist`);
    const base = this.store.readConfig(id).process!;
    const { terminal: _terminal, consoleSize: _consoleSize, ...inherited } = base;
    return { ...inherited, ...overrides };
  }

  async exec(rawId: string, options: ExecOptions): Promise<{ process: RunningProcess; sandbox: Sandbox; execId: string }> {
    const id = validateContainerId(rawId);
    const record = this.store.read(id);
    if (!record) throw new RuntimeError(`container ${id} does not exist`);
    const status = this.currentStatus(record);
    if (status !== 'running') throw new RuntimeError(`container ${id}: cannot exec in a ${status} container`);
    if (!options.process.args?.length) throw new RuntimeError(`container ${id}: exec: args must not be empty`);
    const execId = options.execId ?? `exec-${process.pid}-${Date.now().toString(36)}`;
    const sandbox = await this.connect(record);
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
      throw new RuntimeError(`container ${id}: ${describe(error).replace(new RegExp(`^container ${id}: `), '')}`);
    }
  }

  /** Waits for a container's init (or one exec'd process) to exit; the caller keeps the sandbox connection. */
  async wait(rawId: string, execId?: string): Promise<ExitStatus> {
    const id = validateContainerId(rawId);
    const record = this.store.read(id);
    if (!record) throw new RuntimeError(`container ${id} does not exist`);
    const sandbox = await this.connect(record);
    try {
      return await sandbox.wait(id, execId);
    } finally {
      sandbox.disconnect();
    }
  }

  async ps(rawId: string): Promise<number[]> {
    const id = validateContainerId(rawId);
    const record = this.store.read(id);
    if (!record) throw new RuntimeError(`container ${id} does not exist`);
    if (this.currentStatus(record) === 'stopped') return [];
    const sandbox = await this.connect(record);
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
    await this.withContainer(id, async (record) => {
      const status = this.currentStatus(record);
      if (pause && status !== 'running') throw new RuntimeError(`container ${id}: container not running`);
      if (!pause && status !== 'paused') throw new RuntimeError(`container ${id}: container not paused`);
      const sandbox = await this.connect(record);
      try {
        if (pause) await sandbox.pause(id);
        else await sandbox.resume(id);
      } catch (error) {
        if (error instanceof SandboxError && error.errno === 95) {
          throw new RuntimeError(`container ${id}: the ${record.driver} driver cannot ${pause ? 'pause' : 'resume'} containers here`);
        }
        throw error;
      } finally {
        sandbox.disconnect();
      }
      record.status = pause ? 'paused' : 'running';
      this.store.write(record);
    });
  }

  /** Changes the resource limits of a created, running or paused container (runc update). */
  async update(rawId: string, resources: LinuxResources): Promise<void> {
    const id = validateContainerId(rawId);
    await this.withContainer(id, async (record) => {
      const status = this.currentStatus(record);
      if (status === 'stopped') throw new RuntimeError(`container ${id}: cannot update a stopped container`);
      const cannot = () => new RuntimeError(`container ${id}: the ${record.driver} driver cannot change resource limits`);
      const sandbox = await this.connect(record);
      try {
        if (!sandbox.update) throw cannot();
        await sandbox.update(id, resources);
      } catch (error) {
        throw error instanceof SandboxError && error.errno === 95 ? cannot() : error;
      } finally {
        sandbox.disconnect();
      }
    });
  }

  // ---- helpers ---------------------------------------------------------------------------------------------

  private loadSpec(bundle: string): Spec {
    try {
      return loadSpec(bundle);
    } catch (error) {
      if (error instanceof SpecError) throw new RuntimeError(error.message);
      throw error;
    }
  }

  // The drivers (and the sockets and child processes they use) are loaded only by operations that reach a
  // sandbox: `state` never does, and start-up time is paid on every call.
  private async driverForSpec(spec: Spec, id: string): Promise<Driver> {
    const { chooseDriverName, DRIVER_ANNOTATION } = await import('../drivers/drivers.js');
    return this.driver(chooseDriverName(spec.annotations?.[DRIVER_ANNOTATION], this.options.driver), id);
  }

  private async driver(name: string, id: string): Promise<Driver> {
    const { getDriver } = await import('../drivers/drivers.js');
    try {
      return await getDriver(name);
    } catch (error) {
      throw new RuntimeError(`container ${id}: ${describe(error)}`);
    }
  }

  async connect(record: ContainerRecord): Promise<Sandbox> {
    if (!record.sandbox) throw new RuntimeError(`container ${record.id}: it has no sandbox (it was never fully created)`);
    const driver = await this.driver(record.driver, record.id);
    try {
      return await driver.connect(record.sandbox);
    } catch (error) {
      throw new RuntimeError(`container ${record.id}: ${describe(error)}`);
    }
  }

  private async withContainer<T>(id: string, operation: (record: ContainerRecord) => Promise<T>): Promise<T> {
    const lock: FileLock | undefined = await this.store.lock(id);
    if (!lock) throw new RuntimeError(`container ${id} does not exist`);
    try {
      return await operation(this.store.read(id)!);
    } finally {
      lock.release();
    }
  }
}
