// A driver whose sandboxes live in memory, as Kata's mock hypervisor: containers and exec'd processes that "run"
// until signalled or told to exit, with exit statuses, pause/resume and update where its capabilities say so,
// and failures on demand. With its process table it stands in for the host, so that Runtime and TaskService
// are unit-tested without root, an agent, containerd or QEMU.
import { Errno } from '../../src/errors/errno.js';
import { SandboxError } from '../../src/errors/errors.js';
import type { ProcessTable } from '../../src/host/host-process.js';
import type { LinuxResources } from '../../src/oci/linux-resources.js';
import type {
  ContainerConfig, Driver, DriverCapabilities, DriverRegistry, ExecConfig, ExitStatus, ProcessOutput, ProcessStatus,
  RunningProcess, Sandbox, SandboxConfig, SandboxHandle, Stats,
} from '../../src/sandbox/driver.js';

/** Above any pid_max: a fake pid never names a host process. */
const FIRST_PID = 10_000_000;

type FakeState = 'created' | 'running' | 'paused' | 'stopped';

/** A process of a fake sandbox: a container's init (execId undefined) or an exec'd one. */
export class FakeProcess {
  state: FakeState = 'created';
  exit: ExitStatus | undefined;
  readonly stdin: Buffer[] = [];
  stdinClosed = false;
  readonly exited: Promise<ExitStatus>;
  private markExited!: (exit: ExitStatus) => void;

  constructor(readonly containerId: string, readonly execId: string | undefined, readonly pid: number, private readonly output?: ProcessOutput) {
    this.exited = new Promise((resolve) => (this.markExited = resolve));
  }

  get alive(): boolean {
    return this.state !== 'stopped';
  }

  /** Writes to the process's relayed stdout (a `stream` process only). */
  print(text: string): void {
    this.output?.stdout(Buffer.from(text));
  }

  /** The process ends with this status: its relayed output ends first, as the agent sends it. */
  end(exitStatus: number): void {
    if (!this.alive) return;
    this.output?.stdout(null);
    this.output?.stderr(null);
    this.state = 'stopped';
    this.exit = { exitStatus, exitedAt: new Date() };
    this.markExited(this.exit);
  }

  running(): RunningProcess {
    return {
      pid: this.pid,
      writeStdin: (data) => this.stdin.push(data),
      closeStdin: () => (this.stdinClosed = true),
    };
  }
}

export interface FakeContainer {
  id: string;
  config: ContainerConfig;
  init: FakeProcess;
  execs: Map<string, FakeProcess>;
  resources: LinuxResources[];
}

/** What a sandbox call can be made to fail with, once: `driver.failNext('startContainer', error)`. */
export type FakeOperation = 'boot' | 'connect' | 'createContainer' | 'finishCreate' | 'startContainer' | 'exec' | 'signal' | 'pause' | 'resume' | 'update' | 'deleteContainer';

let sandboxCount = 0;

/** One booted sandbox's state, shared by every FakeSandbox connected to it. */
export class FakeSandboxState {
  readonly key = `fake-${++sandboxCount}`;
  readonly containers = new Map<string, FakeContainer>();
  alive = true;
  recorded = false;
  readonly oomListeners: Array<(containerId: string) => void> = [];

  constructor(readonly config: SandboxConfig) {}
}

export class FakeDriver implements Driver {
  readonly name = 'fake';
  readonly capabilities: DriverCapabilities;
  /** Every sandbox booted, by its handle's key. */
  readonly sandboxes = new Map<string, FakeSandboxState>();
  /** Every process, by pid. */
  readonly processes = new Map<number, FakeProcess>();
  /** The calls made to sandboxes, in order: `createContainer c1`, `signal c1 15`… */
  readonly calls: string[] = [];
  private nextPid = FIRST_PID;
  private readonly failures = new Map<FakeOperation, Error>();
  private readonly actions = new Map<FakeOperation, () => void>();

  constructor(capabilities: Partial<DriverCapabilities> = {}) {
    this.capabilities = {
      isolation: 'namespaces', description: 'in memory (unit tests)', pause: true, exec: true, terminal: true, ownKernel: false,
      cgroups: true, hookStateLimit: 1 << 20, ...capabilities,
    };
  }

  /** The next call of `operation` throws `error`. */
  failNext(operation: FakeOperation, error: Error): void {
    this.failures.set(operation, error);
  }

  /** Something that happens in the sandbox while the next `operation` is under way (an OOM kill during a start). */
  duringNext(operation: FakeOperation, action: () => void): void {
    this.actions.set(operation, action);
  }

  /** Throws what failNext set for `operation`, once; runs what duringNext set for it first. */
  check(operation: FakeOperation): void {
    const during = this.actions.get(operation);
    if (during) {
      this.actions.delete(operation);
      during();
    }
    const error = this.failures.get(operation);
    if (!error) return;
    this.failures.delete(operation);
    throw error;
  }

  newProcess(containerId: string, execId: string | undefined, output?: ProcessOutput): FakeProcess {
    const process = new FakeProcess(containerId, execId, this.nextPid++, output);
    this.processes.set(process.pid, process);
    return process;
  }

  /** The container's init, or one of its exec'd processes, of whichever sandbox holds it. */
  process(containerId: string, execId?: string): FakeProcess {
    for (const state of this.sandboxes.values()) {
      const container = state.containers.get(containerId);
      if (container) {
        const process = execId ? container.execs.get(execId) : container.init;
        if (process) return process;
      }
    }
    throw new Error(`the fake driver has no process ${containerId}${execId ? `/${execId}` : ''}`);
  }

  async boot(config: SandboxConfig): Promise<Sandbox> {
    this.check('boot');
    const state = new FakeSandboxState(config);
    this.sandboxes.set(state.key, state);
    return new FakeSandbox(this, state);
  }

  async connect(handle: SandboxHandle): Promise<Sandbox> {
    this.check('connect');
    const state = this.sandboxes.get(String(handle.key));
    if (!state?.alive) throw new SandboxError(`the fake sandbox ${String(handle.key)} is gone`);
    return new FakeSandbox(this, state);
  }

  isAlive(handle: SandboxHandle): boolean {
    return this.sandboxes.get(String(handle.key))?.alive ?? false;
  }

  async cleanup(handle: SandboxHandle): Promise<void> {
    const state = this.sandboxes.get(String(handle.key));
    if (state) endSandbox(state);
  }

  async abandonedBoot(dir: string): Promise<void> {
    for (const state of this.sandboxes.values()) if (state.config.dir === dir) endSandbox(state);
  }

  /** The driver as the runtime and the shim take it: every name, and every container, gets this one. */
  registry(): DriverRegistry {
    return {
      forSpec: async () => this,
      named: async (name) => {
        if (name !== this.name) throw new Error(`unknown driver "${name}"`);
        return this;
      },
      endAbandoned: async (dir) => this.abandonedBoot(dir),
    };
  }

  /** The host's process table as the runtime sees it: the fake's pids, alive while their process is. */
  processTable(): ProcessTable {
    return {
      startTime: (pid) => (this.processes.get(pid)?.alive ? `start-${pid}` : undefined),
      isAlive: (pid, startTime) => startTime === `start-${pid}` && (this.processes.get(pid)?.alive ?? false),
      kill: (pid, signal) => {
        const process = this.processes.get(pid);
        if (!process?.alive) throw Object.assign(new Error(`kill ESRCH`), { code: 'ESRCH' });
        process.end(128 + (typeof signal === 'number' ? signal : 9));
      },
    };
  }
}

function endSandbox(state: FakeSandboxState): void {
  for (const container of state.containers.values()) {
    container.init.end(137);
    for (const exec of container.execs.values()) exec.end(137);
  }
  state.alive = false;
}

class FakeSandbox implements Sandbox {
  readonly handle: SandboxHandle;

  constructor(private readonly driver: FakeDriver, private readonly state: FakeSandboxState) {
    this.handle = { driver: driver.name, key: state.key };
  }

  private container(id: string): FakeContainer {
    const container = this.state.containers.get(id);
    if (!container) throw new SandboxError('no such container', { containerId: id, errno: Errno.ENOENT });
    return container;
  }

  private call(operation: string, ...args: Array<string | number | undefined>): void {
    this.driver.calls.push([operation, ...args.filter((arg) => arg !== undefined)].join(' '));
  }

  async createContainer(config: ContainerConfig, output?: ProcessOutput): Promise<RunningProcess> {
    this.call('createContainer', config.id);
    this.driver.check('createContainer');
    if (this.state.containers.has(config.id)) throw new SandboxError('already exists', { containerId: config.id, errno: Errno.EEXIST });
    const init = this.driver.newProcess(config.id, undefined, config.stdio === 'stream' ? output : undefined);
    this.state.containers.set(config.id, { id: config.id, config, init, execs: new Map(), resources: [] });
    return init.running();
  }

  async finishCreate(id: string): Promise<void> {
    this.call('finishCreate', id);
    this.driver.check('finishCreate');
    this.container(id);
  }

  async startContainer(id: string): Promise<void> {
    this.call('startContainer', id);
    const { init } = this.container(id);
    this.driver.check('startContainer');
    if (init.state !== 'created') throw new SandboxError(`the init process is ${init.state}`, { containerId: id, errno: Errno.EINVAL });
    init.state = 'running';
  }

  async exec(config: ExecConfig, output?: ProcessOutput): Promise<RunningProcess> {
    this.call('exec', config.containerId, config.execId);
    const container = this.container(config.containerId);
    this.driver.check('exec');
    if (container.init.state !== 'running') throw new SandboxError('process not running', { containerId: config.containerId, errno: Errno.ESRCH });
    const process = this.driver.newProcess(config.containerId, config.execId, config.stdio === 'stream' ? output : undefined);
    process.state = 'running';
    container.execs.set(config.execId, process);
    return process.running();
  }

  async signal(id: string, signal: number, options: { execId?: string; all?: boolean } = {}): Promise<void> {
    this.call('signal', id, options.execId, signal, options.all ? 'all' : undefined);
    const container = this.container(id);
    this.driver.check('signal');
    const targets = options.all
      ? [container.init, ...container.execs.values()].filter((process) => process.alive)
      : [options.execId ? container.execs.get(options.execId) : container.init].filter((process): process is FakeProcess => process?.alive ?? false);
    if (targets.length === 0) throw new SandboxError('process not running', { containerId: id, errno: Errno.ESRCH });
    if (signal === 0) return;
    // The init of a pid namespace takes its whole namespace with it.
    const ending = targets.includes(container.init) ? [container.init, ...container.execs.values()] : targets;
    for (const process of ending) process.end(128 + signal);
  }

  async wait(id: string, execId?: string): Promise<ExitStatus> {
    const container = this.container(id);
    const process = execId ? container.execs.get(execId) : container.init;
    if (!process) throw new SandboxError(`no such exec ${execId}`, { containerId: id, errno: Errno.ENOENT });
    return process.exited;
  }

  async processes(id?: string): Promise<ProcessStatus[]> {
    const containers = id ? [this.container(id)] : [...this.state.containers.values()];
    return containers.flatMap((container) => [container.init, ...container.execs.values()].map((process) => ({
      containerId: container.id,
      ...(process.execId ? { execId: process.execId } : {}),
      pid: process.pid,
      status: process.state === 'paused' ? 'running' : process.state,
      ...(process.exit ? { exit: process.exit } : {}),
    })));
  }

  async ps(id: string): Promise<number[]> {
    const container = this.container(id);
    return [container.init, ...container.execs.values()].filter((process) => process.alive).map((process) => process.pid);
  }

  async stats(id: string): Promise<Stats> {
    return { cpuNs: 1000, rssBytes: 4096, pids: (await this.ps(id)).length };
  }

  async pause(id: string): Promise<void> {
    this.freeze(id, 'pause');
  }

  async resume(id: string): Promise<void> {
    this.freeze(id, 'resume');
  }

  private freeze(id: string, operation: 'pause' | 'resume'): void {
    this.call(operation, id);
    const container = this.container(id);
    this.driver.check(operation);
    if (!this.driver.capabilities.pause) throw new SandboxError(`cannot ${operation}: no freezer`, { containerId: id, errno: Errno.EOPNOTSUPP });
    const [from, to]: FakeState[] = operation === 'pause' ? ['running', 'paused'] : ['paused', 'running'];
    for (const process of [container.init, ...container.execs.values()]) if (process.state === from) process.state = to;
  }

  async resize(id: string): Promise<void> {
    this.call('resize', id);
    this.container(id);
  }

  async deleteContainer(id: string): Promise<void> {
    this.call('deleteContainer', id);
    this.driver.check('deleteContainer');
    const container = this.container(id);
    container.init.end(137);
    for (const exec of container.execs.values()) exec.end(137);
    this.state.containers.delete(id);
  }

  async update(id: string, resources: LinuxResources): Promise<void> {
    this.call('update', id);
    const container = this.container(id);
    this.driver.check('update');
    if (!this.driver.capabilities.cgroups) throw new SandboxError('no cgroups here', { containerId: id, errno: Errno.EOPNOTSUPP });
    container.resources.push(resources);
  }

  async onOom(listener: (containerId: string) => void): Promise<void> {
    this.state.oomListeners.push(listener);
  }

  async recorded(): Promise<void> {
    this.state.recorded = true;
  }

  async destroy(): Promise<void> {
    this.call('destroy');
    endSandbox(this.state);
  }

  disconnect(): void {}
}
