// `containerd-shim-runbox-v2 start`: finds or starts the shim for this container's group and prints its address,
// and nothing else, for containerd. The long-running shim is this binary again without a subcommand, detached
// in its own process group, with the listening socket as fd 3, stdout on /dev/null and stderr on the bundle's
// `log` FIFO. Only light modules load here: this runs for every pod.
import { spawn } from 'node:child_process';
import { constants, openSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { bindUnixSocket, isServed, socketFd } from '../host/unix-socket.js';
import { readShimPid, writeServingShimPid, writeShimFiles } from './bundle-record.js';
import { serveArguments, type ShimFlags } from './shim-flags.js';
import { bootstrapLine, groupId, shimProtocol, shimSocketPath, shimStateDir } from './shim-socket.js';
import { BUNDLE_LOG_FIFO } from '../generated/facts.js';
import { RuntimeError } from '../errors/errors.js';

const GRPC_READY_TIMEOUT_MS = 10_000;

/**
 * Takes the runtime options containerd writes on stdin (a google.protobuf.Any, or nothing) so that its write
 * completes. runbox has no runtime option yet: the sandbox's driver comes from the annotation or RUNBOX_DRIVER.
 */
function consumeRuntimeOptions(): void {
  try {
    readFileSync(0);
  } catch {
    // no stdin
  }
}

/** The bundle's log FIFO for the shim's stderr; read-write so that opening it never waits for a reader. */
function openLog(bundle: string): number | 'ignore' {
  try {
    return openSync(join(bundle, BUNDLE_LOG_FIFO), constants.O_RDWR | constants.O_NONBLOCK | constants.O_APPEND);
  } catch {
    return 'ignore';
  }
}

function listeningFd(server: Server): number {
  const fd = socketFd(server);
  if (fd === undefined) throw new Error('cannot find the listening socket\'s file descriptor');
  return fd;
}

export async function start(flags: ShimFlags, entry: string): Promise<string> {
  const protocol = shimProtocol();
  consumeRuntimeOptions();
  const socketPath = shimSocketPath(flags.address, flags.namespace, groupId(flags.bundle, flags.id));
  const line = bootstrapLine(socketPath, protocol);
  if (await isServed(socketPath)) {
    // Another container of the same group: its shim serves this one too.
    writeShimFiles(flags.bundle, `unix://${socketPath}`, readShimPid(shimStateDir(socketPath)));
    return line;
  }
  const log = openLog(flags.bundle);
  let fd3: number | 'pipe';
  if (protocol === 'grpc') {
    fd3 = 'pipe';
  } else {
    const server = createServer();
    await bindUnixSocket(socketPath, (path) => new Promise((resolve, reject) => {
      server.once('error', reject).listen(path, () => resolve());
    }));
    fd3 = listeningFd(server);
  }
  const child = spawn(process.execPath, [entry, ...serveArguments(flags)], {
    cwd: flags.bundle,
    detached: true,
    stdio: ['ignore', 'ignore', log, fd3],
  });
  if (protocol === 'grpc') await grpcReady(child);
  child.unref();
  writeServingShimPid(shimStateDir(socketPath), child.pid!);
  writeShimFiles(flags.bundle, `unix://${socketPath}`, child.pid!);
  return line;
}

function grpcReady(child: ReturnType<typeof spawn>): Promise<void> {
  return new Promise((resolve, reject) => {
    const pipe = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
    const timer = setTimeout(() => reject(new RuntimeError('the shim did not start serving gRPC in time')), GRPC_READY_TIMEOUT_MS);
    let text = '';
    pipe.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('ready')) {
        clearTimeout(timer);
        pipe.destroy();
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new RuntimeError(`the shim exited (status ${code}) before serving gRPC; see the bundle's log`));
    });
  });
}
