// containerd's command line for a v2 shim: `-namespace NS -address SOCK -publish-binary BIN -id ID [-bundle DIR]
// [-debug] [start|delete]`. Go's flag package accepts `-flag value`, `--flag value` and `-flag=value`.
import { UsageError } from '../errors/errors.js';

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  /** The bundle directory: containerd gives `-bundle` for delete; otherwise it is the working directory. */
  bundle: string;
  debug: boolean;
  /** `start`, `delete`, or undefined for the long-running shim itself. */
  action: 'start' | 'delete' | undefined;
}

const VALUE_FLAGS = new Map<string, keyof ShimFlags>([
  ['namespace', 'namespace'], ['address', 'address'], ['publish-binary', 'publishBinary'], ['id', 'id'], ['bundle', 'bundle'],
]);

export function parseShimFlags(argv: string[], cwd: string): ShimFlags {
  const flags: ShimFlags = { namespace: '', address: '', publishBinary: '', id: '', bundle: cwd, debug: false, action: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-')) {
      if (arg !== 'start' && arg !== 'delete') throw new UsageError(`unknown subcommand "${arg}" (expected start or delete)`);
      flags.action = arg;
      continue;
    }
    const [name, inline] = arg.replace(/^--?/, '').split(/=(.*)/s, 2) as [string, string | undefined];
    if (name === 'debug' || name === 'v') {
      flags.debug = name === 'debug' ? inline !== 'false' : flags.debug;
      continue;
    }
    const key = VALUE_FLAGS.get(name);
    if (!key) throw new UsageError(`unknown flag -${name}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`flag -${name} needs a value`);
    (flags as unknown as Record<string, string>)[key] = value;
  }
  if (!flags.namespace) throw new UsageError('shim namespace cannot be empty (-namespace)');
  if (!flags.id) throw new UsageError('shim id cannot be empty (-id)');
  return flags;
}

/** The flags to re-spawn the shim with, without a subcommand (that is the long-running shim). */
export function serveArguments(flags: ShimFlags): string[] {
  const args = ['-namespace', flags.namespace, '-id', flags.id, '-address', flags.address, '-publish-binary', flags.publishBinary, '-bundle', flags.bundle];
  if (flags.debug) args.push('-debug');
  return args;
}
