// Task Create: the container's bundle and runtime options read, its rootfs mounted, the shim's sandbox booted
// (by the first Create), the init created up to its hooks and the bundle record written; a Create that fails
// ends what it made. The id is reserved from the start: a second Create of it meanwhile is refused.
import { RpcError } from '../errors/errors.js';
import { loadSpec } from '../oci/load-spec.js';
import type { Spec } from '../oci/spec.js';
import { StatusCode } from '../rpc/status-code.js';
import type { Sandbox } from '../sandbox/driver.js';
import { createStopsForHooks, passCreateHookPoint, runHooksReportingFailures } from '../runtime/hooks.js';
import { writeBundleRecord } from './bundle-record.js';
import { FifoIo } from './fifo-io.js';
import { mountRootfs, unmountRootfs, type Mount } from './rootfs-mounts.js';
import { rpcErrorOf } from './rpc-status.js';
import { runtimeConfig, type RuntimeConfig } from './runtime-config.js';
import { newProcess, type TaskContainer, type TaskTable } from './task-table.js';

export interface CreateTaskRequest {
  id: string;
  bundle: string;
  rootfs: Mount[];
  terminal: boolean;
  stdin: string;
  stdout: string;
  stderr: string;
  checkpoint: string;
  options?: { typeUrl: string; value: Uint8Array } | null;
}

export async function createTask(tasks: TaskTable, request: CreateTaskRequest): Promise<object> {
  const { id, bundle } = request;
  const { events, log, stateDir } = tasks.options;
  if (tasks.containers.has(id)) throw new RpcError(StatusCode.ALREADY_EXISTS, `container ${id}: already exists`);
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
  tasks.containers.set(id, container);
  let created = false;
  let sandbox: Sandbox | undefined;
  try {
    if (request.rootfs.length) {
      await mountRootfs(request.rootfs, spec.root!.path);
      container.rootfsMounted = true;
    }
    sandbox = (await tasks.bootSandbox(id, spec, config, bundle)).sandbox;
    const stopsForHooks = createStopsForHooks(spec.hooks);
    const init = await sandbox.createContainer({ id, bundle, spec, stdio: 'stream', finish: !stopsForHooks }, io);
    created = true;
    container.init.pid = init.pid;
    io.attachStdin(init);
    if (stopsForHooks) await passCreateHookPoint(sandbox, id, spec.hooks, tasks.stateJson(container, 'creating'));
    writeBundleRecord(bundle, { sandbox: sandbox.handle, stateDir, pid: init.pid, pidStartTime: tasks.processes.startTime(init.pid) });
  } catch (error) {
    tasks.containers.delete(id);
    if (sandbox && created) await sandbox.deleteContainer(id).catch(() => {});
    if (created) await runHooksReportingFailures('poststop', spec.hooks?.poststop, tasks.stateJson(container, 'stopped'), (e) => log(e.message));
    io.close();
    if (container.rootfsMounted) await unmountRootfs(spec.root!.path);
    throw rpcErrorOf(error);
  }
  events.publish('create', {
    containerId: id, bundle, rootfs: request.rootfs,
    io: { stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal },
    pid: container.init.pid,
  });
  return { pid: container.init.pid };
}
