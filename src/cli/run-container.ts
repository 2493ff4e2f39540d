// `runbox run` once the bundle is known: create and start the container, and in the foreground relay its stdio
// and signals, wait for it, delete it and take its exit status. The oclif command (which may first make the
// bundle from an image) and the fast path (lifecycle-operations.ts) both run it.
import { constants } from 'node:os';
import { attachStdin, followWindowSize, forwardSignals, outputToStdio } from './attach.js';
import { context } from './context.js';

export interface RunOptions {
  bundle: string;
  /** Return once the container runs. */
  detach?: boolean;
  /** Keep the container after it exits (foreground only). */
  keep?: boolean;
  pidFile?: string;
  consoleSocket?: string;
  /** Called once the container is gone, or its create or start failed (the oclif command removes a bundle). */
  onGone?: () => void;
}

export async function runContainer(id: string, options: RunOptions): Promise<void> {
  const runtime = context().runtime;
  const gone = options.onGone ?? (() => {});
  const relay = !options.detach && !options.consoleSocket ? outputToStdio() : undefined;
  try {
    await runtime.create(id, {
      bundle: options.bundle,
      ...(options.pidFile ? { pidFile: options.pidFile } : {}),
      ...(options.consoleSocket ? { consoleSocket: options.consoleSocket } : {}),
      ...(relay ? { relayTerminal: relay.output } : {}),
    });
  } catch (error) {
    gone();
    throw error;
  }
  const terminal = runtime.relayedProcess(id);
  const detachStdin = terminal ? attachStdin(terminal, true) : undefined;
  const stopResizing = terminal ? followWindowSize((w, h) => runtime.resizeRelay(id, w, h)) : undefined;
  try {
    await runtime.start(id);
  } catch (error) {
    stopResizing?.();
    detachStdin?.();
    runtime.releaseRelay(id);
    await runtime.delete(id, true).catch(() => {});
    gone();
    throw error;
  }
  if (options.detach) return;

  const stopForwarding = forwardSignals((signal) => {
    runtime.kill(id, constants.signals[signal]).catch(() => {});
  });
  const exit = await runtime.wait(id);
  stopForwarding();
  stopResizing?.();
  if (terminal) await relay!.done;
  detachStdin?.();
  runtime.releaseRelay(id);
  if (!options.keep) {
    await runtime.delete(id, true);
    gone();
  }
  process.exitCode = exit.exitStatus;
}
