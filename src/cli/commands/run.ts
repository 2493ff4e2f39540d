import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { constants } from 'node:os';
import { attachStdin, followWindowSize, forwardSignals, outputToStdio } from '../attach.js';
import { context } from '../context.js';

export default class Run extends Command {
  static summary = 'Create and start a container; in the foreground, exit with its exit status and delete it.';
  static args = { id: Args.string({ description: 'container id', required: true }) };
  static flags = {
    bundle: Flags.string({ char: 'b', description: 'path to the bundle directory', default: '.' }),
    detach: Flags.boolean({ char: 'd', description: 'return once the container runs' }),
    'pid-file': Flags.string({ description: 'write the container process id to this file' }),
    'console-socket': Flags.string({ description: 'unix socket that receives the pty master when process.terminal is true' }),
    keep: Flags.boolean({ description: 'keep the container after it exits (foreground only)' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Run);
    const runtime = context().runtime;
    const id = args.id;
    const relay = !flags.detach && !flags['console-socket'] ? outputToStdio() : undefined;
    await runtime.create(id, {
      bundle: flags.bundle,
      ...(flags['pid-file'] ? { pidFile: flags['pid-file'] } : {}),
      ...(flags['console-socket'] ? { consoleSocket: flags['console-socket'] } : {}),
      ...(relay ? { relayTerminal: relay.output } : {}),
    });
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
      throw error;
    }
    if (flags.detach) return;

    const stopForwarding = forwardSignals((signal) => {
      runtime.kill(id, constants.signals[signal]).catch(() => {});
    });
    const exit = await runtime.wait(id);
    stopForwarding();
    stopResizing?.();
    if (terminal) await relay!.done;
    detachStdin?.();
    runtime.releaseRelay(id);
    if (!flags.keep) await runtime.delete(id, true);
    process.exitCode = exit.exitStatus;
  }
}
