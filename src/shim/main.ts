// containerd-shim-runbox-v2: `start` and `delete` are short commands containerd runs; without a subcommand the
// binary is the long-running shim. Each path imports only what it needs, so that `start` stays light.
import { UsageError } from '../errors/errors.js';
import { parseShimFlags } from './shim-flags.js';

// containerd reads start's stdout and stderr together: a Node warning would corrupt the address it expects.
process.removeAllListeners('warning');

function fail(message: string): never {
  process.stderr.write(`containerd-shim-runbox-v2: ${message}\n`);
  process.exit(1);
}

/**
 * A pooled shim (bin/pool-worker.cjs) of kind shim or shimvm (one holding a pod's microVM): waits in the pool at dir
 * to be handed a pod; entry is the shim's Node entry; taken: called once it has a pod to serve.
 */
export async function poolWorker(kind: 'shim' | 'shimvm', idleSeconds: number, dir: string, entry: string, taken?: () => void): Promise<void> {
  try {
    const { shimPoolWorker } = await import('./shim-pool-worker.js');
    await shimPoolWorker(kind, idleSeconds, dir, entry, taken);
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
}

export async function main(argv: string[], entry: string): Promise<void> {
  let flags;
  try {
    flags = parseShimFlags(argv, process.cwd());
  } catch (error) {
    if (error instanceof UsageError) fail(error.message);
    throw error;
  }
  try {
    switch (flags.action) {
      case 'start': {
        const { start } = await import('./shim-start.js');
        process.stdout.write(await start(flags, entry));
        process.exit(0);
        break;
      }
      case 'delete': {
        const { deleteAfterShim } = await import('./shim-delete.js');
        const response = await deleteAfterShim(flags, (message) => process.stderr.write(`${message}\n`));
        process.stdout.write(response, () => process.exit(0));
        break;
      }
      default: {
        const { serve } = await import('./shim-serve.js');
        await serve(flags);
      }
    }
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
}
