// The long-running shim: serves the Task service for one group of containers on the socket `start` prepared
// (fd 3, ttrpc) or on its own gRPC socket, forwards events to containerd, and exits after Shutdown once no task
// is left.
import { lstatSync, rmSync, writeSync } from 'node:fs';
import { TtrpcServer } from '../rpc/ttrpc-server.js';
import { describe } from '../errors/errors.js';
import { writeServingShimPid } from './bundle-record.js';
import { EventForwarder } from './event-forwarder.js';
import type { ShimFlags } from './shim-flags.js';
import { groupId, shimProtocol, shimSocketPath, shimStateDir } from './shim-socket.js';
import { TaskService } from './task-service.js';
import { SHIM_INHERITED_FD } from '../generated/facts.js';

/** The service a ttrpc shim serves containerd (a gRPC shim serves containerd.task.v3.Task). */
export const TTRPC_TASK_SERVICE = 'containerd.task.v2.Task';

const EVENT_FLUSH_MS = 5000;

function log(message: string): void {
  // stderr is the bundle's log FIFO: containerd copies these lines into its own log.
  process.stderr.write(`time="${new Date().toISOString()}" level=warning msg="runbox shim: ${message.replace(/"/g, '\\"')}"\n`);
}

/** listenerFd: where the listening socket is (ttrpc), SHIM_INHERITED_FD unless a pooled shim received it elsewhere. */
export async function serve(flags: ShimFlags, listenerFd = SHIM_INHERITED_FD): Promise<void> {
  const protocol = shimProtocol();
  const group = groupId(flags.bundle, flags.id);
  const socketPath = shimSocketPath(flags.address, flags.namespace, group);
  const events = new EventForwarder(process.env.TTRPC_ADDRESS, flags.namespace, log);
  let stop: () => Promise<void> = async () => {};
  const stateDir = shimStateDir(socketPath);
  writeServingShimPid(stateDir, process.pid);
  const service = new TaskService({
    stateDir,
    events,
    log,
    onShutdown: () => void stop(),
  });
  // A bug in one request must not take every container of the pod down with the shim.
  process.on('uncaughtException', (error) => log(`internal error: ${error.stack ?? describe(error)}`));
  process.on('unhandledRejection', (error) => log(`internal error: ${describe(error)}`));
  process.on('SIGPIPE', () => {});

  if (protocol === 'grpc') {
    // @grpc/grpc-js is heavy: only a gRPC shim loads it.
    const { serveGrpc } = await import('../rpc/grpc-server.js');
    const server = await serveGrpc('containerd.task.v3.Task', service.implementation(), socketPath);
    stop = once(async () => {
      await server.close();
      await finish(service, events);
    });
    writeSync(SHIM_INHERITED_FD, 'ready\n');
  } else {
    const server = new TtrpcServer();
    server.addService(TTRPC_TASK_SERVICE, service.implementation());
    await server.listen({ fd: listenerFd });
    stop = once(async () => {
      await server.close();
      // The socket was bound by `start`; with it served no more, its file goes too.
      try {
        if (lstatSync(socketPath).isSocket()) rmSync(socketPath);
      } catch {
        // gone already
      }
      await finish(service, events);
    });
  }
}

function once(action: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= action());
}

async function finish(service: TaskService, events: EventForwarder): Promise<void> {
  await service.destroy();
  await events.flush(EVENT_FLUSH_MS);
  events.close();
  process.exit(0);
}
