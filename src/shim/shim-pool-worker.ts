// The shim's pooled process (docs/warm-pool.md): the long-running shim's modules loaded before any pod needs them;
// once a shim `start` hands it a pod (the listening socket, the log FIFO as stderr, containerd's flags, environment
// and the bundle as cwd), it serves that pod exactly as a shim `start` spawned would, and nothing else.
import { lstatSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { describe } from '../errors/errors.js';
import { processStartTime } from '../host/host-process.js';
import { recordMemberFailure } from '../host/warm-pool.js';
import { waitForWork } from '../host/pooled-process.js';
import { precompileCodecs } from '../rpc/protos.js';
import { parseShimFlags } from './shim-flags.js';
import { POOL_SHIM_SERVE } from '../generated/facts.js';

/** Whether the `start` that handed the pod over said POOL_SHIM_SERVE (it wrote the pod's files) before it ended. */
function toldToServe(connection: Socket): Promise<boolean> {
  return new Promise((resolve) => {
    let said = '';
    connection.setEncoding('utf8');
    connection.on('data', (chunk: string) => {
      said += chunk;
      if (said.length >= POOL_SHIM_SERVE.length) resolve(said.startsWith(POOL_SHIM_SERVE));
    });
    connection.once('end', () => resolve(false)).once('error', () => resolve(false)).once('close', () => resolve(false));
    connection.resume();
  });
}

/**
 * kind shim: a pooled shim; shimvm: one that first restores a pod's microVM and keeps it for the pod it is handed
 * (drivers/qemu/vm-reserve.ts): a member whose VM cannot be kept here records why (KIND.failed) and exits.
 */
export async function shimPoolWorker(kind: 'shim' | 'shimvm', idleSeconds: number, dir: string, entry: string, taken?: () => void): Promise<void> {
  const { serve, TTRPC_TASK_SERVICE } = await import('./shim-serve.js');
  const { EVENTS_SERVICE, EVENT_TYPES } = await import('./event-forwarder.js');
  precompileCodecs([TTRPC_TASK_SERVICE, EVENTS_SERVICE], [...Object.values(EVENT_TYPES), 'ttrpc.Request', 'ttrpc.Response']);
  if (kind === 'shimvm') {
    const { QemuDriver } = await import('../drivers/qemu/qemu-driver.js');
    try {
      await new QemuDriver().reserve(dir, processStartTime(process.pid) ?? '');
    } catch (error) {
      // Its stderr is /dev/null (a refill's): `runbox pool` shows why instead.
      recordMemberFailure(dir, kind, describe(error));
      process.exit(1);
    }
  }
  // Titled as a spawned shim's command line reads (ps, and whoever looks for a pod's shim by it).
  const work = await waitForWork(kind, idleSeconds, dir, (args) => ['node', entry, ...args].join(' '));
  const listener = work.fds[0];
  if (listener === undefined) throw new Error('the handoff brought no listening socket');
  // A start killed before it wrote the pod's address and shim.pid leaves a pod no one will ask for: this process
  // unbinds its socket (still listening on it, so no other start can have bound that path anew) and ends.
  if (!(await toldToServe(work.connection))) {
    const socket = work.records.get('socket');
    try {
      if (socket && lstatSync(socket).isSocket()) rmSync(socket);
    } catch {
      // gone already
    }
    process.exit(0);
  }
  work.connection.destroy();
  taken?.();
  await serve(parseShimFlags(work.args, process.cwd()), listener);
}
