// What the runtime's operations share: the containers' state under --root, the log, where drivers come from and
// the processes a container's pid names (the host's, unless the caller gives others: the unit tests' fake).
import { resolve } from 'node:path';
import { ContainerNotFoundError, detailFor, RuntimeError } from '../errors/errors.js';
import type { FileLock } from '../host/file-lock.js';
import { hostProcesses, type ProcessTable } from '../host/host-process.js';
import { silentLogger, type Logger } from '../host/logger.js';
import type { Spec, Status } from '../oci/spec.js';
import type { Driver, DriverRegistry, Sandbox } from '../sandbox/driver.js';
import { runHooksReportingFailures } from './hooks.js';
import { stateReport } from './state-report.js';
import { StateStore, type ContainerRecord } from './state-store.js';
import { DEFAULT_ROOT } from '../generated/facts.js';

export { DEFAULT_ROOT };

export interface RuntimeOptions {
  root?: string;
  /** The --driver flag; RUNBOX_DRIVER and the config.json annotation are consulted too. */
  driver?: string;
  logger?: Logger;
  /** Where drivers come from: drivers/drivers.ts unless given. */
  drivers?: DriverRegistry;
  /** What a container's recorded pid names: the host's processes unless given. */
  processes?: ProcessTable;
}

// The drivers (and the sockets and child processes they use) are loaded only by operations that reach a
// sandbox: `state` never does, and start-up time is paid on every call.
const driversOnFirstUse: DriverRegistry = {
  forSpec: async (annotations, choice) => (await import('../drivers/drivers.js')).driverRegistry.forSpec(annotations, choice),
  named: async (name) => (await import('../drivers/drivers.js')).driverRegistry.named(name),
  endAbandoned: async (dir, warn) => (await import('../drivers/drivers.js')).driverRegistry.endAbandoned(dir, warn),
};

export class RuntimeContext {
  readonly store: StateStore;
  readonly logger: Logger;
  readonly processes: ProcessTable;
  private readonly drivers: DriverRegistry;

  constructor(private readonly options: RuntimeOptions) {
    this.store = new StateStore(resolve(options.root ?? DEFAULT_ROOT));
    this.logger = options.logger ?? silentLogger;
    this.drivers = options.drivers ?? driversOnFirstUse;
    this.processes = options.processes ?? hostProcesses;
  }

  /** The truth about a container now: whatever was recorded, a container whose process is gone is stopped. */
  currentStatus(record: ContainerRecord): Status {
    if (record.status === 'creating' || record.status === 'stopped') return record.status;
    return this.processes.isAlive(record.pid, record.pidStartTime) ? record.status : 'stopped';
  }

  async driverForSpec(spec: Spec, id: string): Promise<Driver> {
    return this.named(id, () => this.drivers.forSpec(spec.annotations, this.options.driver));
  }

  async driver(name: string, id: string): Promise<Driver> {
    return this.named(id, () => this.drivers.named(name));
  }

  private async named(id: string, get: () => Promise<Driver>): Promise<Driver> {
    try {
      return await get();
    } catch (error) {
      throw new RuntimeError(detailFor(error, id), { containerId: id, cause: error });
    }
  }

  /** Ends what a sandbox left in a container's directory, found from the directory alone by every driver. */
  async endAbandoned(id: string): Promise<void> {
    const failures: string[] = [];
    await this.drivers.endAbandoned(this.store.dir(id), (message) => failures.push(message));
    if (failures.length) throw new RuntimeError(failures.join('; '), { containerId: id });
  }

  async connect(record: ContainerRecord): Promise<Sandbox> {
    if (!record.sandbox) throw new RuntimeError('it has no sandbox (it was never fully created)', { containerId: record.id });
    const driver = await this.driver(record.driver, record.id);
    try {
      return await driver.connect(record.sandbox);
    } catch (error) {
      throw new RuntimeError(detailFor(error, record.id), { containerId: record.id, cause: error });
    }
  }

  /** Runs `operation` on the container's record under its lock. */
  async withContainer<T>(id: string, operation: (record: ContainerRecord) => Promise<T>): Promise<T> {
    const lock: FileLock | undefined = await this.store.lock(id);
    if (!lock) throw new ContainerNotFoundError(id);
    try {
      return await operation(this.store.read(id)!);
    } finally {
      lock.release();
    }
  }

  /** The container's record, read without its lock; ContainerNotFoundError when there is none. */
  record(id: string): ContainerRecord {
    const record = this.store.read(id);
    if (!record) throw new ContainerNotFoundError(id);
    return record;
  }

  /** Whatever the sandbox did, the container's own process must not survive its deletion. */
  killLeftover(record: ContainerRecord): void {
    if (record.pid > 0 && this.processes.isAlive(record.pid, record.pidStartTime)) {
      try {
        this.processes.kill(record.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  async runPoststop(record: ContainerRecord, spec: Spec): Promise<void> {
    await runHooksReportingFailures('poststop', spec.hooks?.poststop, JSON.stringify(stateReport(record, 'stopped')),
      (error) => this.logger.warn(`container ${record.id}: ${error.message}`));
  }
}
