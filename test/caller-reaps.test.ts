// containerd's runc shim with BinaryName = bin/runbox: the shim is a child subreaper that runs `create
// --pid-file`, `start` and `exec --detach --pid-file`, and learns each exit status by reaping the pid it was
// given. test/helpers/subreaper.py does exactly that, with nothing else around it.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RUNBOX, TestEnv, readText, runCommand } from './helpers/runbox.js';

const SUBREAPER = fileURLToPath(new URL('../../test/helpers/subreaper.py', import.meta.url));

type Step = { run: string[]; stdout?: string } | { reap: string };

/** Runs the steps in the subreaper; gives the exit statuses it reaped. */
async function asSubreaper(env: TestEnv, steps: Step[]): Promise<number[]> {
  const withRoot = steps.map((step) => ('run' in step ? { ...step, run: [RUNBOX, '--root', env.root, ...step.run] } : step));
  const result = await runCommand('python3', [SUBREAPER, JSON.stringify(withRoot)], { timeout: 90_000 });
  if (result.code !== 0) throw new Error(`subreaper: ${result.stderr}`);
  return JSON.parse(result.stdout) as number[];
}

test('a subreaper that ran create --pid-file and start reaps the init and gets its exit status', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'echo hello; exit 7'];
  });
  const id = env.id();
  const pidFile = join(env.dir, 'init.pid');
  const output = join(env.dir, 'init.out');
  const statuses = await asSubreaper(env, [
    { run: ['create', '--bundle', bundle, '--pid-file', pidFile, id], stdout: output },
    { run: ['start', id] },
    { reap: pidFile },
  ]);
  t.deepEqual(statuses, [7]);
  t.is(readText(output), 'hello\n');
  const state = await env.state(id);
  t.is(state.status, 'stopped');
  t.is(state.pid, 0);
  const deleted = await env.run(['delete', id]);
  t.is(deleted.code, 0, deleted.stderr);
  t.is((await env.run(['state', id])).code, 1);
});

test('a subreaper reaps a process from exec --detach --pid-file, and the init it has killed', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '100'];
  });
  const processFile = join(env.dir, 'process.json');
  writeFileSync(processFile, JSON.stringify({ args: ['sh', '-c', 'exit 7'], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } }));
  const id = env.id();
  const initPid = join(env.dir, 'init.pid');
  const execPid = join(env.dir, 'exec.pid');
  const statuses = await asSubreaper(env, [
    { run: ['create', '--bundle', bundle, '--pid-file', initPid, id] },
    { run: ['start', id] },
    { run: ['exec', '--detach', '--pid-file', execPid, '--process', processFile, id] },
    { reap: execPid },
    { run: ['kill', id, 'KILL'] },
    { reap: initPid },
  ]);
  t.deepEqual(statuses, [7, 128 + 9]);
  t.is((await env.state(id)).status, 'stopped');
  t.is((await env.run(['delete', id])).code, 0);
});
