// The CLI's pooled process (docs/warm-pool.md): the lifecycle bundle and the emulated driver loaded before any call
// needs them; once bin/runbox's launcher hands it a `create` or `run` (argv, environment, cwd, umask, its stdio
// and the agent it preforked), it runs that one call as `node bin/runbox.cjs` would, and its exit status goes back
// to the launcher, which exits with it. Should the launcher die, this process dies too, as a CLI killed would.
import { writeSync } from 'node:fs';
import { waitForWork } from '../host/pooled-process.js';
import { socketFd } from '../host/unix-socket.js';
import { ENV_PREFORKED_AGENT, POOL_EXIT } from '../generated/facts.js';

/** Waits for a call; resolves to its argv once this process has become its CLI. */
export async function cliPoolWorker(idleSeconds: number, dir: string): Promise<string[]> {
  await import('../drivers/emulated/emulated-driver.js');
  const work = await waitForWork('cli', idleSeconds, dir, (args) => ['runbox', ...args].join(' '));
  const agent = work.fds[0];
  const agentPid = work.records.get('agent-pid');
  if (agent !== undefined && agentPid !== undefined) process.env[ENV_PREFORKED_AGENT] = `${agent} ${agentPid}`;
  const fd = socketFd(work.connection);
  process.on('exit', (code) => {
    try {
      if (fd !== undefined) writeSync(fd, `${POOL_EXIT}${code}\n`);
    } catch {
      // the launcher is gone
    }
  });
  const launcherGone = () => process.kill(process.pid, 'SIGKILL');
  work.connection.on('end', launcherGone).on('error', launcherGone).resume().unref();
  return work.args;
}
