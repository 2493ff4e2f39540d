import { CliContext, setContext } from './context.js';
import type { GlobalOptions } from './global-options.js';

function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // oclif decorates parse errors with usage hints over several lines; runc prints one line.
  return message.split('\n').map((line) => line.trim()).filter(Boolean).join(' ');
}

/** Logs an error as runc does (one line, to --log and stderr) and gives the exit status, 1 (0 for oclif's exits). */
export function reportError(options: GlobalOptions, error: unknown): number {
  if ((error as { oclif?: { exit?: number } }).oclif?.exit === 0) return 0;
  new CliContext(options).logger.error(errorMessage(error));
  return 1;
}

/** Runs a command with the context the global options set up; gives its exit status. */
export async function runReported(options: GlobalOptions, command: () => Promise<void>): Promise<number> {
  try {
    setContext(new CliContext(options));
    await command();
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    return reportError(options, error);
  }
}
