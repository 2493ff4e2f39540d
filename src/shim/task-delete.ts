// Task Delete: an exec'd process is forgotten; a container is deleted from the sandbox, its poststop hooks run,
// its rootfs unmounted and its bundle record removed. A task that runs (or is paused) cannot be deleted.
import { describe, RpcError } from '../errors/errors.js';
import { StatusCode } from '../rpc/status-code.js';
import { runHooksReportingFailures } from '../runtime/hooks.js';
import { removeBundleRecord } from './bundle-record.js';
import { timestamp } from './event-forwarder.js';
import { unmountRootfs } from './rootfs-mounts.js';
import type { TaskProcess, TaskTable } from './task-table.js';
import { KILLED_EXIT_STATUS } from '../generated/facts.js';

/** The exit status containerd is told for a task deleted before it ran or before its exit was seen: SIGKILL's. */

export async function deleteTask(tasks: TaskTable, request: { id: string; execId: string }): Promise<object> {
  const { events, log } = tasks.options;
  const container = tasks.container(request.id);
  const process = tasks.process(request.id, request.execId);
  if (process.state === 'running' || process.state === 'paused') {
    throw new RpcError(StatusCode.FAILED_PRECONDITION, `container ${request.id}: cannot delete a ${process.state} process`);
  }
  if (process.execId) {
    container.execs.delete(process.execId);
    process.io.close();
    return deleteResponse(process);
  }
  const { sandbox } = await tasks.booted();
  tasks.containers.delete(container.id);
  await sandbox.deleteContainer(container.id).catch((error) => log(`container ${container.id}: ${describe(error)}`));
  // A task deleted before it ran (or whose exit is not reported yet) ends now.
  if (!process.exit) process.markExited({ exitStatus: KILLED_EXIT_STATUS, exitedAt: new Date() });
  for (const exec of container.execs.values()) exec.io.close();
  process.io.close();
  await runHooksReportingFailures('poststop', container.spec.hooks?.poststop, tasks.stateJson(container, 'stopped'),
    (error) => log(`container ${container.id}: ${error.message}`));
  if (container.rootfsMounted) await unmountRootfs(container.spec.root!.path);
  removeBundleRecord(container.bundle);
  const response = deleteResponse(process);
  events.publish('delete', { containerId: container.id, id: container.id, ...response });
  return response;
}

function deleteResponse(process: TaskProcess): { pid: number; exitStatus: number; exitedAt: { seconds: number; nanos: number } } {
  const exit = process.exit ?? { exitStatus: 0, exitedAt: new Date() };
  return { pid: process.pid, exitStatus: exit.exitStatus, exitedAt: timestamp(exit.exitedAt) };
}
