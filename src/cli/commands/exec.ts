import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { validateProcess } from '../../oci/load-spec.js';
import type { Process } from '../../oci/spec.js';
import { writeFileAtomic } from '../../host/atomic-file.js';
import { RuntimeError } from '../../errors/errors.js';
import { attachStdin, followWindowSize, forwardSignals, outputToStdio } from '../attach.js';
import { context } from '../context.js';

function parseUser(text: string): { uid: number; gid?: number } {
  const match = /^(\d+)(?::(\d+))?$/.exec(text);
  if (!match) throw new RuntimeError(`invalid --user "${text}": want UID[:GID]`);
  return { uid: Number(match[1]), ...(match[2] ? { gid: Number(match[2]) } : {}) };
}

/**
 * Splits exec's argv as runc does: its own flags are read only up to the container id, and what follows the id
 * (after an optional `--`) is the command, its own flags included (`runc exec ID sh -c CMD`).
 */
function splitAtCommand(argv: string[], flags: Record<string, { type: string; char?: string }>): { own: string[]; command: string[] } {
  const takesValue = new Set<string>();
  for (const [name, flag] of Object.entries(flags)) {
    if (flag.type !== 'option') continue;
    takesValue.add(`--${name}`);
    if (flag.char) takesValue.add(`-${flag.char}`);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      // `exec [FLAGS] -- ID CMD…`: the `--` stays before the id, which may start with `-` (`exec -- -web sh`).
      return { own: argv.slice(0, i + 2), command: argv.slice(i + 2) };
    }
    if (arg.startsWith('-') && arg !== '-') {
      if (takesValue.has(arg)) i++;
      continue;
    }
    const rest = argv.slice(i + 1);
    return { own: argv.slice(0, i + 1), command: rest[0] === '--' ? rest.slice(1) : rest };
  }
  return { own: argv, command: [] };
}

/** `exec --process FILE`: the whole process, as with runc (nothing from config.json), user 0:0 unless it says. */
function readProcessFile(id: string, path: string): Process {
  let read: Partial<Process>;
  try {
    read = JSON.parse(readFileSync(path, 'utf8')) as Partial<Process>;
  } catch (error) {
    throw new RuntimeError(`cannot read process file ${path}: ${(error as Error).message}`, { containerId: id });
  }
  if (read === null || typeof read !== 'object' || Array.isArray(read)) throw new RuntimeError(`process file ${path} does not hold a JSON object`, { containerId: id });
  const process_ = { ...read, user: { uid: 0, gid: 0, ...read.user } } as Process;
  try {
    validateProcess(process_);
  } catch (error) {
    throw new RuntimeError(`process file ${path}: ${(error as Error).message}`, { containerId: id });
  }
  return process_;
}

export default class Exec extends Command {
  static summary = 'Run a new process inside a running container.';
  static args = { id: Args.string({ description: 'container id', required: true }) };
  static flags = {
    process: Flags.string({ char: 'p', description: 'a JSON file holding the process (config.json\'s process object)' }),
    tty: Flags.boolean({ char: 't', description: 'allocate a pseudo-TTY' }),
    detach: Flags.boolean({ char: 'd', description: 'do not wait for the process' }),
    cwd: Flags.string({ description: 'working directory inside the container' }),
    env: Flags.string({ char: 'e', multiple: true, multipleNonGreedy: true, description: 'set an environment variable (NAME=value)' }),
    user: Flags.string({ char: 'u', description: 'UID[:GID] to run as' }),
    'additional-gids': Flags.integer({ char: 'g', multiple: true, multipleNonGreedy: true, description: 'additional group ids' }),
    'pid-file': Flags.string({ description: 'write the process id to this file' }),
    'console-socket': Flags.string({ description: 'unix socket that receives the pty master' }),
    'no-new-privs': Flags.boolean({ description: 'set no_new_privs for the process' }),
  };

  async run(): Promise<void> {
    const { own, command } = splitAtCommand(this.argv, Exec.flags);
    this.argv = own;
    const { args, flags } = await this.parse(Exec);
    const runtime = context().runtime;
    const id = args.id;
    let process_: Process;
    if (flags.process) {
      process_ = readProcessFile(id, flags.process);
    } else {
      if (command.length === 0) throw new RuntimeError('exec needs a command (runbox exec ID CMD ARGS…)', { containerId: id });
      const base = runtime.execProcess(id, {});
      const user = flags.user ? parseUser(flags.user) : undefined;
      process_ = {
        ...base,
        args: command,
        env: [...(base.env ?? []), ...(flags.env ?? [])],
        ...(flags.cwd ? { cwd: flags.cwd } : {}),
        user: {
          ...base.user,
          ...(user ? { uid: user.uid, gid: user.gid ?? base.user.gid } : {}),
          ...(flags['additional-gids'] ? { additionalGids: flags['additional-gids'] } : {}),
        },
        ...(flags['no-new-privs'] ? { noNewPrivileges: true } : {}),
        ...(flags.tty ? { terminal: true } : {}),
      };
    }
    const terminal = Boolean(process_.terminal);
    const consoleSocket = flags['console-socket'];
    const relay = !flags.detach && !consoleSocket ? outputToStdio() : undefined;
    const { process: running, sandbox, execId } = await runtime.exec(id, {
      process: process_,
      // Detached, the process keeps this command's stdio, as with runc (containerd's runc shim passes its pipes).
      stdio: consoleSocket ? 'null' : flags.detach ? 'inherit' : 'stream',
      ...(consoleSocket ? { consoleSocket } : {}),
      ...(relay ? { output: relay.output } : {}),
    });
    if (flags['pid-file']) writeFileAtomic(flags['pid-file'], String(running.pid), 0o644);
    if (flags.detach || !relay) {
      sandbox.disconnect();
      return;
    }
    const detachStdin = attachStdin(running, terminal);
    const stopResizing = terminal ? followWindowSize((w, h) => sandbox.resize(id, execId, w, h)) : () => {};
    const stopForwarding = forwardSignals((signal) => {
      sandbox.signal(id, constants.signals[signal], { execId }).catch(() => {});
    });
    const [exit] = await Promise.all([sandbox.wait(id, execId), relay.done]);
    stopForwarding();
    stopResizing();
    detachStdin();
    sandbox.disconnect();
    process.exitCode = exit.exitStatus;
  }
}
