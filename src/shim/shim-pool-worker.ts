// The shim's pooled process (docs/warm-pool.md): the long-running shim's modules loaded before any pod needs them;
// once a shim `start` hands it a pod (the listening socket, the log FIFO as stderr, containerd's flags, environment
// and the bundle as cwd), it serves that pod exactly as a shim `start` spawned would, and nothing else.
import { waitForWork } from '../host/pooled-process.js';
import { precompileCodecs } from '../rpc/protos.js';
import { parseShimFlags } from './shim-flags.js';

export async function shimPoolWorker(idleSeconds: number, dir: string, entry: string, taken?: () => void): Promise<void> {
  const { serve, TTRPC_TASK_SERVICE } = await import('./shim-serve.js');
  const { EVENTS_SERVICE, EVENT_TYPES } = await import('./event-forwarder.js');
  precompileCodecs([TTRPC_TASK_SERVICE, EVENTS_SERVICE], [...Object.values(EVENT_TYPES), 'ttrpc.Request', 'ttrpc.Response']);
  // Titled as a spawned shim's command line reads (ps, and whoever looks for a pod's shim by it).
  const work = await waitForWork('shim', idleSeconds, dir, (args) => ['node', entry, ...args].join(' '));
  taken?.();
  const listener = work.fds[0];
  if (listener === undefined) throw new Error('the handoff brought no listening socket');
  await serve(parseShimFlags(work.args, process.cwd()), listener);
}
