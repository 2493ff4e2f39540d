// A Sandbox reached through the runbox agent, whatever carries the bytes: every driver whose sandbox runs the
// agent (emulated, qemu) hands one of these a connected AgentClient.
import type { LinuxResources } from '../oci/linux-resources.js';
import type { AgentClient } from './agent-client.js';
import { MAX_PAYLOAD } from './agent-frame.js';
import { createRecords, processRecords } from './agent-records-from-spec.js';
import { cgroupPathRecords, cgroupResourceRecords, devicesCgroup2, type CgroupMode } from './cgroup-records.js';
import { UNIT_SEPARATOR, type RecordList, type Records } from './agent-records.js';
import { hostLsm } from './host-lsm.js';
import { checkMountLabel, processLsmRecords, type LsmSupport } from './lsm-records.js';
import { AgentError, AgentFrameTooLargeError, SandboxError } from '../errors/errors.js';
import { Errno } from '../errors/errno.js';
import {
  type ContainerConfig, type ExecConfig, type ExitStatus, type ProcessOutput, type ProcessState,
  type ProcessStatus, type RunningProcess, type Sandbox, type SandboxHandle, type Stats,
} from '../sandbox/driver.js';

/**
 * The largest state JSON a `finish_create` or `start` request carries to the hooks: a frame's payload, less room
 * for the other records (the op, an id of up to 255 bytes, the keys).
 */
export const HOOK_STATE_LIMIT = MAX_PAYLOAD - 1024;

function stateRecord(stateJson: string | undefined): RecordList {
  return stateJson === undefined ? [] : [['state', stateJson]];
}

function nanosToDate(nanos: string): Date {
  return new Date(Number(BigInt(nanos) / 1_000_000n));
}

export class AgentSandbox implements Sandbox {
  /** The `subscribe` that makes the agent send this connection its events (OOM kills). */
  private subscribed: Promise<Records> | undefined;

  constructor(
    readonly handle: SandboxHandle,
    private readonly client: AgentClient,
    private readonly onDestroy: () => Promise<void> = async () => {},
    /** The cgroup version where the agent runs, when it applies linux.cgroupsPath and linux.resources. */
    private readonly cgroups?: CgroupMode,
    /** The agent runs on this host: its cgroups are this host's (RUNBOX_CGROUP2_DEVICES applies to them). */
    private readonly onThisHost = false,
  ) {}

  private call(records: RecordList): Promise<Records> {
    return this.attach(records, undefined).response;
  }

  /** Sends a request (relaying the output of the process it starts, if any), with agent errors as SandboxError. */
  private attach(records: RecordList, output: ProcessOutput | undefined): { id: number; response: Promise<Records> } {
    const call = this.client.call(records, output);
    const response = call.response.catch((error: unknown) => {
      if (error instanceof AgentError) throw new SandboxError(error.detail, { containerId: error.containerId, errno: error.errno, cause: error });
      throw error;
    });
    return { id: call.id, response };
  }

  /** The `create` request for a container; a driver whose agent sees the container elsewhere adapts it. */
  protected createRequest(config: ContainerConfig): RecordList {
    checkMountLabel(config.spec, this.lsm());
    const records: RecordList = [
      ...createRecords(config.id, config.spec, config.bundle, config.stdio, config.consoleSocket),
      ...processLsmRecords(config.spec.process!, this.lsm()),
      ...(config.finish ? [['finish', '1'] as [string, string]] : []),
    ];
    if (!this.cgroups) return records;
    const linux = config.spec.linux;
    // Every container's cgroup gets device rules, as runc gives it: without any in config.json, the always-allowed ones.
    const resources = { ...linux?.resources, devices: linux?.resources?.devices ?? [] };
    return [...records, ...cgroupPathRecords(linux?.cgroupsPath), ...this.resourceRecords(resources, this.cgroups)];
  }

  /** The security modules the agent's kernel enforces (the host's, for an agent on the host). */
  protected lsm(): LsmSupport {
    return hostLsm();
  }

  /** linux.resources as `cgroup_set` records; a driver whose agent sees other CPUs adapts them. */
  protected resourceRecords(resources: LinuxResources | undefined, mode: CgroupMode): RecordList {
    const cgroup2Devices = this.onThisHost && resources?.devices ? devicesCgroup2(mode) : undefined;
    return cgroupResourceRecords(resources, mode, cgroup2Devices);
  }

  async createContainer(config: ContainerConfig, output?: ProcessOutput): Promise<RunningProcess> {
    try {
      return await this.started(this.attach(this.createRequest(config), config.stdio === 'stream' ? output : undefined));
    } catch (error) {
      if (!(error instanceof AgentFrameTooLargeError)) throw error;
      throw new SandboxError(
        `config.json is too large for the sandbox agent: its create request (the process's args and env, ` +
        `the mounts, devices and hooks) would be ${error.bytes} bytes, more than the ${MAX_PAYLOAD} it takes`,
        { containerId: config.id },
      );
    }
  }

  async finishCreate(id: string, stateJson?: string): Promise<void> {
    await this.call([['op', 'finish_create'], ['id', id], ...stateRecord(stateJson)]);
  }

  async startContainer(id: string, stateJson?: string): Promise<void> {
    await this.call([['op', 'start'], ['id', id], ...stateRecord(stateJson)]);
  }

  /**
   * How an exec with stdio `inherit` reaches this caller's own fds 0-2: a host agent duplicates them from this
   * process (which waits for the agent's reply). A driver whose agent cannot reach host processes overrides it.
   */
  protected callerStdioRecords(): RecordList {
    return [['stdio_from_pid', String(process.pid)]];
  }

  async exec(config: ExecConfig, output?: ProcessOutput): Promise<RunningProcess> {
    const records: RecordList = [
      ['op', 'exec'], ['id', config.containerId], ['exec_id', config.execId],
      ...processRecords(config.process, config.stdio, config.consoleSocket),
      ...processLsmRecords(config.process, this.lsm()),
      ...(config.stdio === 'inherit' ? this.callerStdioRecords() : []),
    ];
    return this.started(this.attach(records, config.stdio === 'stream' ? output : undefined));
  }

  private async started(call: { id: number; response: Promise<Records> }): Promise<RunningProcess> {
    const pid = (await call.response).number('pid');
    return {
      pid,
      writeStdin: (data) => this.client.writeStdin(call.id, data),
      closeStdin: () => this.client.closeStdin(call.id),
    };
  }

  async signal(id: string, signal: number, options: { execId?: string; all?: boolean } = {}): Promise<void> {
    const records: RecordList = [['op', 'signal'], ['id', id], ['signal', String(signal)]];
    if (options.execId) records.push(['exec_id', options.execId]);
    if (options.all) records.push(['all', '1']);
    await this.call(records);
  }

  async wait(id: string, execId?: string): Promise<ExitStatus> {
    const records: RecordList = [['op', 'wait'], ['id', id]];
    if (execId) records.push(['exec_id', execId]);
    const response = await this.call(records);
    return { exitStatus: response.number('exit_status'), exitedAt: nanosToDate(response.get('exited_at') ?? '0') };
  }

  async processes(id?: string): Promise<ProcessStatus[]> {
    const records: RecordList = [['op', 'state']];
    if (id) records.push(['id', id]);
    const response = await this.call(records);
    return response.all('process').map((value) => {
      const [containerId, execId, pid, status, exitStatus, exitedAt] = value.split(UNIT_SEPARATOR);
      const process: ProcessStatus = { containerId: containerId!, pid: Number(pid), status: status as ProcessState };
      if (execId) process.execId = execId;
      if (status === 'stopped') process.exit = { exitStatus: Number(exitStatus), exitedAt: nanosToDate(exitedAt ?? '0') };
      return process;
    });
  }

  async ps(id: string): Promise<number[]> {
    return (await this.call([['op', 'ps'], ['id', id]])).all('pid').map(Number);
  }

  async stats(id: string): Promise<Stats> {
    const response = await this.call([['op', 'stats'], ['id', id]]);
    return { cpuNs: response.number('cpu_ns'), rssBytes: response.number('rss_bytes'), pids: response.number('pids') };
  }

  async pause(id: string): Promise<void> {
    await this.call([['op', 'pause'], ['id', id]]);
  }

  async resume(id: string): Promise<void> {
    await this.call([['op', 'resume'], ['id', id]]);
  }

  async resize(id: string, execId: string | undefined, width: number, height: number): Promise<void> {
    const records: RecordList = [['op', 'resize'], ['id', id], ['width', String(width)], ['height', String(height)]];
    if (execId) records.push(['exec_id', execId]);
    await this.call(records);
  }

  async deleteContainer(id: string): Promise<void> {
    await this.call([['op', 'delete'], ['id', id]]);
  }

  async update(id: string, resources: LinuxResources): Promise<void> {
    if (!this.cgroups) throw new SandboxError(`the ${this.handle.driver} driver cannot change resource limits`, { containerId: id, errno: Errno.EOPNOTSUPP });
    await this.call([['op', 'update'], ['id', id], ...this.resourceRecords(resources, this.cgroups)]);
  }

  async onOom(listener: (containerId: string) => void): Promise<void> {
    this.client.on('event', (event: Records) => {
      if (event.get('event') === 'oom') listener(event.get('id') ?? '');
    });
    this.subscribed ??= this.call([['op', 'subscribe']]);
    await this.subscribed;
  }

  async recorded(): Promise<void> {
    await this.call([['op', 'recorded']]);
  }

  async destroy(): Promise<void> {
    try {
      await this.call([['op', 'shutdown']]);
    } catch {
      // The agent may be gone already; onDestroy ends whatever is left.
    }
    this.client.close();
    await this.onDestroy();
  }

  disconnect(): void {
    this.client.close();
  }
}
