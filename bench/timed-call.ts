// One CLI call, timed from its spawn to its exit. Its stderr goes to a file, never a pipe: a container keeps the
// stdio its create was given, and a caller waiting for a pipe to close would wait for the container.
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

/** Milliseconds; throws with the call's stderr if it fails. */
export function timedCall(command: string, args: string[], stderrFile: string, env: NodeJS.ProcessEnv = process.env): number {
  const stderr = openSync(stderrFile, 'w');
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { stdio: ['ignore', 'ignore', stderr], env });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  closeSync(stderr);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${readFileSync(stderrFile, 'utf8').trim()}`);
  return ms;
}
