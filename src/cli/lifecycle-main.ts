// The fast path of the runbox CLI, bundled on its own (dist/runbox-lifecycle.cjs) so that a lifecycle call
// reads and runs none of oclif: a lifecycle command (create, start, state, kill, delete, and run of a bundle)
// whose argv is in plain form (see manifest-argv.ts) runs here; for anything else it declines before doing
// anything, and main.ts runs the whole CLI on the same argv.
import { join } from 'node:path';
import { PROJECT_ROOT } from '../host/install-paths.js';
import { parseGlobalOptions, type GlobalOptions } from './global-options.js';
import { FAST_PATH_FLAGS, lifecycleOperation } from './lifecycle-operations.js';
import { parseManifestArgv, readManifestCommand, withOnlyFlags } from './manifest-argv.js';
import { runReported } from './run-reported.js';
import { stdioDrained } from './stdio-drained.js';
import type { PooledCall } from './cli-pool-worker.js';


/**
 * The exit status of the lifecycle command argv asks for, once its output is out (the caller exits at once), or
 * undefined when main.ts must handle argv.
 */
export async function lifecycleMain(argv: string[]): Promise<number | undefined> {
  let options: GlobalOptions;
  let rest: string[];
  try {
    ({ options, rest } = parseGlobalOptions(argv));
  } catch {
    return undefined;
  }
  const [command, ...args] = rest;
  const operation = lifecycleOperation(command);
  const manifestCommand = operation && readManifestCommand(join(PROJECT_ROOT, 'oclif.manifest.json'), command!);
  const fastPathFlags = FAST_PATH_FLAGS[command as keyof typeof FAST_PATH_FLAGS];
  const input = manifestCommand && parseManifestArgv(fastPathFlags ? withOnlyFlags(manifestCommand, fastPathFlags) : manifestCommand, args);
  if (!input) return undefined;
  const status = await runReported(options, () => operation(input));
  await stdioDrained();
  return status;
}

/** A pooled CLI worker (bin/pool-worker.cjs): resolves to the call it was handed, to run as bin/runbox.cjs does. */
export async function lifecyclePoolWorker(idleSeconds: number, dir: string): Promise<PooledCall> {
  return (await import('./cli-pool-worker.js')).cliPoolWorker(idleSeconds, dir);
}
