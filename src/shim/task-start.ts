// Task Start: a container's init runs its program (then its poststart hooks), or an exec'd process is started;
// either way its exit is watched, and reported (Wait returns, TaskExit is sent) once its last output is out.
import { describe, RpcError } from '../errors/errors.js';
import { StatusCode } from '../rpc/status-code.js';
import type { ExitStatus, Sandbox } from '../sandbox/driver.js';
import { runHooksReportingFailures } from '../runtime/hooks.js';
import { timestamp } from './event-forwarder.js';
import { rpcErrorOf } from './rpc-status.js';
import type { TaskProcess, TaskTable } from './task-table.js';

/** How long an exit waits for the process's last output before it is reported anyway. */
const OUTPUT_DRAIN_MS = 10_000;

export async function startTask(tasks: TaskTable, request: { id: string; execId: string }): Promise<object> {
  const { events, log } = tasks.options;
  const container = tasks.container(request.id);
  const process = tasks.process(request.id, request.execId);
  if (process.state !== 'created') throw new RpcError(StatusCode.FAILED_PRECONDITION, `container ${request.id}: ${request.execId ? `exec ${request.execId}` : 'task'} is ${process.state}, not created`);
  const { sandbox } = await tasks.booted();
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
    events.publish('exec-started', { containerId: container.id, execId: process.execId, pid: process.pid });
    watchExit(tasks, sandbox, process);
    return { pid: process.pid };
  }
  try {
    await sandbox.startContainer(container.id, container.spec.hooks?.startContainer?.length ? tasks.stateJson(container, 'created') : undefined);
  } catch (error) {
    await sandbox.signal(container.id, 9, { all: true }).catch(() => {});
    throw rpcErrorOf(error);
  } finally {
    process.state = 'running';
    watchExit(tasks, sandbox, process);
  }
  events.publish('start', { containerId: container.id, pid: process.pid });
  if (container.oomBeforeStart) {
    container.oomBeforeStart = false;
    events.publish('oom', { containerId: container.id });
  }
  await runHooksReportingFailures('poststart', container.spec.hooks?.poststart, tasks.stateJson(container, 'running'),
    (error) => log(`container ${container.id}: ${error.message}`));
  return { pid: process.pid };
}

/** Reports the process's exit once it happened and its last output is out: Wait returns, TaskExit is sent. */
function watchExit(tasks: TaskTable, sandbox: Sandbox, process: TaskProcess): void {
  void (async () => {
    let exit: ExitStatus;
    try {
      exit = await sandbox.wait(process.containerId, process.execId || undefined);
    } catch (error) {
      tasks.options.log(`container ${process.containerId}: waiting for ${process.execId || 'init'}: ${describe(error)}`);
      exit = { exitStatus: 255, exitedAt: new Date() };
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([process.io.drained, new Promise((resolve) => (timer = setTimeout(resolve, OUTPUT_DRAIN_MS)))]);
    clearTimeout(timer);
    process.io.close();
    process.markExited(exit);
    tasks.options.events.publish('exit', {
      containerId: process.containerId, id: process.execId || process.containerId, pid: process.pid,
      exitStatus: exit.exitStatus, exitedAt: timestamp(exit.exitedAt),
    });
  })();
}
