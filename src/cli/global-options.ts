// runc's global flags come before the command (`runbox --root R --log F --log-format json create …`), which is
// how containerd's runc shim and the conformance suite call a runtime; oclif parses what follows the command.
import { UsageError } from '../errors/errors.js';

export interface GlobalOptions {
  root?: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  driver?: string;
}

const VALUED = new Set(['root', 'log', 'log-format', 'driver', 'criu', 'rootless']);
const BOOLEAN = new Set(['debug', 'systemd-cgroup']);

/** Splits argv into the global options and the rest (the command and its own arguments). */
export function parseGlobalOptions(argv: string[]): { options: GlobalOptions; rest: string[] } {
  const options: GlobalOptions = { logFormat: 'text', debug: false };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') || arg === '--' || arg === '--help' || arg === '--version') break;
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq > 0 ? eq : undefined);
    if (BOOLEAN.has(name)) {
      if (name === 'debug') options.debug = eq > 0 ? arg.slice(eq + 1) !== 'false' : true;
      continue;
    }
    if (!VALUED.has(name)) throw new UsageError(`flag provided but not defined: -${name}`);
    let value: string;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`);
      value = argv[++i]!;
    }
    switch (name) {
      case 'root': options.root = value; break;
      case 'log': options.log = value; break;
      case 'driver': options.driver = value; break;
      case 'log-format':
        if (value !== 'text' && value !== 'json') throw new UsageError(`invalid log-format "${value}": want text or json`);
        options.logFormat = value;
        break;
      default: break; // --criu, --rootless: accepted for runc compatibility, nothing to do
    }
  }
  return { options, rest: argv.slice(i) };
}
