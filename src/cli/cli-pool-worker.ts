// The CLI's pooled process (docs/warm-pool.md): the lifecycle bundle and the emulated driver loaded before any call
// needs them; once bin/runbox's launcher hands it a `create` or `run` (argv, environment, cwd, umask, its stdio
// and the agent it preforked), it runs that one call as `node bin/runbox.cjs` would, and its exit status goes back
// to the launcher, which exits with it. Should the launcher die, this process dies too, as a CLI killed would.
import { openSync, writeSync } from 'node:fs';
import { handoffAddon } from '../host/handoff-addon.js';
import { waitForWork } from '../host/pooled-process.js';
import { socketFd } from '../host/unix-socket.js';
import { ENV_PREFORKED_AGENT, POOL_EXIT } from '../generated/facts.js';

/** A call handed to this process: its argv, and how it ends once its status is known. */
export interface PooledCall {
  argv: string[];
  exit(code: number): never;
}

/** Waits for a call; resolves once this process has become its CLI. */
export async function cliPoolWorker(idleSeconds: number, dir: string): Promise<PooledCall> {
  await import('../drivers/emulated/emulated-driver.js');
  const work = await waitForWork('cli', idleSeconds, dir, (args) => ['runbox', ...args].join(' '));
  const agent = work.fds[0];
  const agentPid = work.records.get('agent-pid');
  if (agent !== undefined && agentPid !== undefined) process.env[ENV_PREFORKED_AGENT] = `${agent} ${agentPid}`;
  const fd = socketFd(work.connection);
  const report = (code: number) => {
    try {
      if (fd !== undefined) writeSync(fd, `${POOL_EXIT}${code}\n`);
    } catch {
      // the launcher is gone
    }
  };
  process.on('exit', report);
  const launcherGone = () => process.kill(process.pid, 'SIGKILL');
  work.connection.on('end', launcherGone).on('error', launcherGone).resume().unref();
  // The exit listeners run (the code cache's), the status goes to the launcher, and this process lets go of the
  // caller's stdio, takes a title without the call's arguments and ends without Node's teardown: the launcher exits
  // once the connection closes, which a process that exits closes only after freeing its memory, some 4 ms later.
  const exit = (code: number): never => {
    process.removeListener('exit', report);
    process.exitCode = code;
    process.emit('exit', code);
    report(code);
    const addon = handoffAddon();
    const nothing = openSync('/dev/null', 'r+');
    for (let std = 0; std < 3; std++) addon.dup2(nothing, std);
    process.title = 'runbox pool ending';
    work.connection.destroy();
    process.kill(process.pid, 'SIGKILL');
    return process.exit(code);
  };
  return { argv: work.args, exit };
}
