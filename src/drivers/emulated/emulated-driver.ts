// The emulated driver: the agent runs as a host process and isolates containers with Linux namespaces. It is
// not a VM boundary — the container shares the host kernel — and says so in its capabilities.
import type { Duplex } from 'node:stream';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { connectUnix } from '../../host/unix-socket.js';
import { AgentClient } from '../../agent-client/agent-client.js';
import { AgentSandbox, HOOK_STATE_LIMIT } from '../../agent-client/agent-sandbox.js';
import { hostCgroupMode } from '../../agent-client/cgroup-records.js';
import { SandboxError } from '../../errors/errors.js';
import { type Driver, type DriverCapabilities, type Sandbox, type SandboxConfig, type SandboxHandle } from '../../sandbox/driver.js';
import { endProcesses, isProcessAlive, processesIn, processStartTime } from '../../host/host-process.js';
import { takePreforkedAgent } from './preforked-agent.js';
import { removeRecordedCgroups } from './recorded-cgroups.js';
import { projectPath } from '../../host/install-paths.js';
import { AGENT_FLAG_CALLER_REAPS, AGENT_FLAG_LOG, AGENT_FLAG_SOCKET, AGENT_FLAG_STDIO_NULL, AGENT_READY, ENV_AGENT_BINARY } from '../../generated/facts.js';

export const AGENT_BINARY = process.env[ENV_AGENT_BINARY] ?? projectPath('dist', 'runbox-agent');

/** How long an agent told to stop (SIGTERM: it kills its containers first) gets before SIGKILL. */
const AGENT_STOP_MS = 1000;

interface EmulatedHandle extends SandboxHandle {
  driver: 'emulated';
  agentPid: number;
  agentStartTime: string;
  socket: string;
}

function asEmulated(handle: SandboxHandle): EmulatedHandle {
  if (handle.driver !== 'emulated' || typeof handle.socket !== 'string' || typeof handle.agentPid !== 'number') {
    throw new SandboxError(`not an emulated sandbox handle: ${JSON.stringify(handle)}`);
  }
  return handle as EmulatedHandle;
}

function connectAgent(socket: string): Promise<AgentClient> {
  return new Promise((resolve, reject) => {
    const stream = connectUnix(socket);
    stream.once('connect', () => {
      stream.removeListener('error', reject);
      resolve(new AgentClient(stream));
    });
    stream.once('error', (error) => reject(new SandboxError(`cannot reach the sandbox agent at ${socket}: ${error.message}`)));
  });
}

/** An agent process just started, and its fd 3 (a socketpair). */
interface StartingAgent {
  pid: number | undefined;
  stream: Duplex;
  /** Rejects when the agent could not be run at all. */
  failed: Promise<never>;
  /** Lets this process exit without it. */
  detach(): void;
}

async function spawnAgent(args: string[], stdio: 'inherit' | 'ignore'): Promise<StartingAgent> {
  // Loaded here, not at start-up: only create boots a sandbox, and mostly with the preforked agent.
  const { spawn } = await import('node:child_process');
  const child = spawn(AGENT_BINARY, args, { detached: true, stdio: [stdio, stdio, stdio, 'pipe'] });
  return {
    pid: child.pid,
    stream: child.stdio[3] as Duplex,
    failed: new Promise((_, reject) => child.once('error', (error) => reject(new SandboxError(`cannot run the sandbox agent ${AGENT_BINARY}: ${error.message}`)))),
    detach: () => child.unref(),
  };
}

/**
 * Waits for the agent's `ready` line on fd 3 (a socketpair), after which the same stream carries the agent
 * protocol: the caller that booted the sandbox talks to it without connecting. Anything else before EOF is the
 * agent's start-up error.
 */
function awaitReady(agent: StartingAgent, logFile: string): Promise<Duplex> {
  const { stream } = agent;
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (!text.startsWith(AGENT_READY)) return;
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.pause();
      const rest = Buffer.from(text.slice(AGENT_READY.length), 'latin1');
      if (rest.length) stream.unshift(rest);
      resolve(stream);
    };
    const onEnd = () => reject(new SandboxError(`the sandbox agent did not start: ${text.trim() || `see ${logFile}`}`));
    stream.on('data', onData);
    stream.once('end', onEnd);
    agent.failed.catch(reject);
  });
}

/** What an agent killed with SIGKILL could not remove: the cgroups it recorded in its directory. */
async function removeCgroupsLeft(dir: string): Promise<void> {
  const left = await removeRecordedCgroups(dir);
  if (left.length) throw new SandboxError(`cannot remove the cgroups ${left.join(', ')}: their processes did not end`);
}

export class EmulatedDriver implements Driver {
  readonly name = 'emulated';
  /** Read once per driver: create asks for it twice (capabilities, then the sandbox). */
  private readonly cgroupMode = hostCgroupMode();
  readonly capabilities: DriverCapabilities = {
    isolation: 'namespaces',
    description: 'Linux namespaces on the host kernel (pid, mount, uts, ipc, and net/user/cgroup on request): not a VM boundary',
    pause: true,
    exec: true,
    terminal: true,
    ownKernel: false,
    cgroups: this.cgroupMode !== undefined,
    hookStateLimit: HOOK_STATE_LIMIT,
    seccompNotify: true,
  };

  async boot(config: SandboxConfig): Promise<Sandbox> {
    if (!existsSync(AGENT_BINARY)) throw new SandboxError(`the sandbox agent ${AGENT_BINARY} is not built (run npm run build)`);
    const socket = join(config.dir, 'agent.sock');
    const logFile = join(config.dir, 'agent.log');
    const stdio = config.stdio === 'inherit' ? 'inherit' : 'ignore';
    // native/agent/main.c: --stdio-null for containers whose stdio is not the caller's, --caller-reaps as in caller_reaps.h
    const args = [
      AGENT_FLAG_SOCKET, socket, AGENT_FLAG_LOG, logFile,
      ...(stdio === 'ignore' ? [AGENT_FLAG_STDIO_NULL] : []), ...(config.callerReaps ? [AGENT_FLAG_CALLER_REAPS] : []),
    ];
    const preforked = takePreforkedAgent(args);
    const agent: StartingAgent = preforked
      ? { ...preforked, failed: new Promise(() => {}), detach: () => {} }
      : await spawnAgent(args, stdio);
    let stream: Duplex;
    try {
      stream = await awaitReady(agent, logFile);
    } catch (error) {
      try {
        if (agent.pid) process.kill(agent.pid, 'SIGKILL');
      } catch {
        // It is gone already.
      }
      throw error;
    }
    agent.detach();
    const handle: EmulatedHandle = {
      driver: 'emulated',
      agentPid: agent.pid!,
      agentStartTime: processStartTime(agent.pid!) ?? '',  // '' never matches: a dead agent is never signalled
      socket,
    };
    const sandbox = this.sandbox(handle, new AgentClient(stream));
    stream.resume();
    return sandbox;
  }

  async connect(handle: SandboxHandle): Promise<Sandbox> {
    const emulated = asEmulated(handle);
    return this.sandbox(emulated, await connectAgent(emulated.socket));
  }

  private sandbox(handle: EmulatedHandle, client: AgentClient): Sandbox {
    return new AgentSandbox(handle, client, () => this.cleanup(handle), this.cgroupMode, true);
  }

  isAlive(handle: SandboxHandle): boolean {
    const emulated = asEmulated(handle);
    return isProcessAlive(emulated.agentPid, emulated.agentStartTime);
  }

  async cleanup(handle: SandboxHandle): Promise<void> {
    const emulated = asEmulated(handle);
    // The agent kills its containers on SIGTERM; give it a moment, then make sure.
    await endProcesses([{ pid: emulated.agentPid, startTime: emulated.agentStartTime }], AGENT_STOP_MS);
    await removeCgroupsLeft(dirname(emulated.socket));
  }

  /**
   * The agent of a sandbox whose handle was never recorded (its caller died first; the agent dies with such a
   * caller, but one may be stopping) or can no longer be read: the runbox-agent whose working directory is the
   * sandbox's (native/agent/main.c), ended as cleanup ends a recorded one.
   */
  async abandonedBoot(dir: string): Promise<void> {
    const agents = processesIn(basename(AGENT_BINARY), dir).map((pid) => ({ pid, startTime: processStartTime(pid) }));
    await endProcesses(agents, AGENT_STOP_MS);
    await removeCgroupsLeft(dir);
  }
}
