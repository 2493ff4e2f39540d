// What the lifecycle commands do once their argv is parsed. They live apart from the oclif command classes so
// that a lifecycle call can run them without loading oclif (see manifest-argv.ts): the classes hold the flag
// definitions, help and errors, these hold the work.
import { parseSignal } from '../oci/signals.js';
import { RuntimeError } from '../errors/errors.js';
import { context } from './context.js';
import { runContainer } from './run-container.js';

export interface ParsedArgv {
  args: Record<string, string | undefined>;
  flags: Record<string, string | boolean | undefined>;
}

function text(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export const LIFECYCLE_OPERATIONS = {
  async create({ args, flags }) {
    const pidFile = text(flags['pid-file']);
    const consoleSocket = text(flags['console-socket']);
    await context().runtime.create(args.id!, {
      bundle: text(flags.bundle) ?? '.',
      ...(pidFile ? { pidFile } : {}),
      ...(consoleSocket ? { consoleSocket } : {}),
      // As with runc, the init passes to the caller's subreaper (containerd's runc shim reaps it for its status).
      callerReaps: true,
    });
  },

  async start({ args }) {
    await context().runtime.start(args.id!);
  },

  async state({ args }) {
    process.stdout.write(`${JSON.stringify(context().runtime.state(args.id!), null, 2)}\n`);
  },

  async kill({ args, flags }) {
    let signal: number;
    try {
      // As runc: an empty signal is the default one.
      signal = parseSignal(args.signal || 'SIGTERM');
    } catch (error) {
      throw new RuntimeError(`${(error as Error).message}`, { containerId: args.id });
    }
    await context().runtime.kill(args.id!, signal, flags.all === true);
  },

  async delete({ args, flags }) {
    await context().runtime.delete(args.id!, flags.force === true);
  },

  async run({ args, flags }) {
    const pidFile = text(flags['pid-file']);
    const consoleSocket = text(flags['console-socket']);
    await runContainer(args.id!, {
      bundle: text(flags.bundle) ?? '.',
      detach: flags.detach === true,
      keep: flags.keep === true,
      ...(pidFile ? { pidFile } : {}),
      ...(consoleSocket ? { consoleSocket } : {}),
    });
  },
} satisfies Record<string, (input: ParsedArgv) => Promise<void>>;

/**
 * The flags the fast path takes, for a command it runs only in part: given any other (for `run`, `--image` and
 * what goes with it), it declines and the whole CLI runs the command.
 */
export const FAST_PATH_FLAGS: Partial<Record<keyof typeof LIFECYCLE_OPERATIONS, string[]>> = {
  run: ['bundle', 'detach', 'pid-file', 'console-socket', 'keep'],
};

export function lifecycleOperation(command: string | undefined): ((input: ParsedArgv) => Promise<void>) | undefined {
  return command && Object.hasOwn(LIFECYCLE_OPERATIONS, command)
    ? LIFECYCLE_OPERATIONS[command as keyof typeof LIFECYCLE_OPERATIONS]
    : undefined;
}
