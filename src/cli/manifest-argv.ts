// Parses a command's argv from oclif.manifest.json, the flag and argument definitions oclif itself wrote from
// the command classes at build time, so that lifecycle calls need not load oclif. It understands the plain
// forms (`--name value`, `--name=value`, `-c value`, booleans, positional arguments in order, `--`); for
// anything else — help, an unknown or hidden flag, a missing or extra argument — it declines, and oclif parses
// the argv and reports the error in its own words.
import { readFileSync } from 'node:fs';
import type { ParsedArgv } from './lifecycle-operations.js';

interface ManifestFlag {
  name: string;
  char?: string;
  type: 'option' | 'boolean';
  default?: unknown;
  multiple?: boolean;
  hidden?: boolean;
  allowNo?: boolean;
}

interface ManifestArg {
  name: string;
  required?: boolean;
  default?: unknown;
}

export interface ManifestCommand {
  args: Record<string, ManifestArg>;
  flags: Record<string, ManifestFlag>;
  strict?: boolean;
}

export function readManifestCommand(manifestFile: string, id: string): ManifestCommand | undefined {
  try {
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { commands?: Record<string, ManifestCommand> };
    return manifest.commands?.[id];
  } catch {
    return undefined;
  }
}

/** The command with only the named flags and no argument past its own (so that any other flag is unknown). */
export function withOnlyFlags(command: ManifestCommand, names: string[]): ManifestCommand {
  const flags = Object.fromEntries(Object.entries(command.flags).filter(([, flag]) => names.includes(flag.name)));
  return { ...command, flags, strict: true };
}

/** The parsed argv, or undefined when it is not in the plain forms this parser takes (oclif's job then). */
export function parseManifestArgv(command: ManifestCommand, argv: string[]): ParsedArgv | undefined {
  if (command.strict === false) return undefined;
  const flagDefinitions = Object.values(command.flags);
  const byName = new Map(flagDefinitions.map((flag) => [flag.name, flag]));
  const byChar = new Map(flagDefinitions.filter((flag) => flag.char).map((flag) => [flag.char!, flag]));
  const flags: ParsedArgv['flags'] = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const long = arg.startsWith('--');
    const eq = long ? arg.indexOf('=') : -1;
    const key = long ? arg.slice(2, eq > 0 ? eq : undefined) : arg.slice(1);
    const flag = long ? byName.get(key) : byChar.get(key);
    if (!flag || flag.hidden || flag.multiple || flags[flag.name] !== undefined) return undefined;
    if (flag.type === 'boolean') {
      if (eq > 0) return undefined;
      flags[flag.name] = true;
    } else if (eq > 0) {
      flags[flag.name] = arg.slice(eq + 1);
    } else {
      const value = argv[i + 1];
      if (value === undefined || value.startsWith('-')) return undefined;
      flags[flag.name] = value;
      i++;
    }
  }
  for (const flag of flagDefinitions) {
    if (flags[flag.name] === undefined && flag.default !== undefined) {
      if (typeof flag.default !== 'string' && typeof flag.default !== 'boolean') return undefined;
      flags[flag.name] = flag.default;
    }
  }
  const argDefinitions = Object.values(command.args);
  if (positional.length > argDefinitions.length) return undefined;
  const args: ParsedArgv['args'] = {};
  for (const [index, definition] of argDefinitions.entries()) {
    const value = positional[index] ?? definition.default;
    if (value === undefined) {
      if (definition.required) return undefined;
      continue;
    }
    if (typeof value !== 'string') return undefined;
    args[definition.name] = value;
  }
  return { args, flags };
}
