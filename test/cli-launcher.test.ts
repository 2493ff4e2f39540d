// For `create`, bin/runbox runs Node through dist/runbox-launcher, which forks the sandbox agent before Node
// starts (native/cli/); without the launcher, Node spawns the agent itself. Both must give the same
// container.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT, RUNBOX, TestEnv, runCommand } from './helpers/runbox.js';

const NODE_CLI = join(PROJECT, 'bin', 'runbox.cjs');

function agentPid(env: TestEnv, id: string): number {
  return (JSON.parse(readFileSync(join(env.root, id, 'state.json'), 'utf8')) as { sandbox: { agentPid: number } }).sandbox.agentPid;
}

function agentArgs(env: TestEnv, id: string): string[] {
  return readFileSync(`/proc/${agentPid(env, id)}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(1);
}

/** create → start → stopped, with the container's stdout in a file; gives the agent's arguments and the output. */
async function lifecycle(t: import('ava').ExecutionContext, env: TestEnv, argv: (id: string, bundle: string) => [string, string[]]) {
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'echo "hello from $(hostname)"'];
    spec.hostname = 'launched';
  });
  const id = env.id();
  const out = join(env.dir, `${id}.out`);
  const [command, args] = argv(id, bundle);
  const created = await runCommand('sh', ['-c', '"$@" >"$0"', out, command, ...args]);
  t.is(created.code, 0, created.stderr);
  const agent = agentArgs(env, id);
  t.is((await env.run(['start', id])).code, 0);
  await env.waitForStatus(id, 'stopped');
  t.is(readFileSync(out, 'utf8'), 'hello from launched\n');
  t.is((await env.run(['delete', id])).code, 0);
  return agent;
}

test('create through bin/runbox gets the agent the launcher forked; Node alone spawns it; the container is the same', async (t) => {
  const env = new TestEnv(t);
  t.deepEqual(await lifecycle(t, env, (id, bundle) => [RUNBOX, ['--root', env.root, 'create', '--bundle', bundle, id]]), ['--preforked']);
  const spawned = await lifecycle(t, env, (id, bundle) => ['node', [NODE_CLI, '--root', env.root, 'create', '--bundle', bundle, id]]);
  t.deepEqual(spawned.slice(0, 1), ['--socket']);
});

test('bin/runbox finds create behind every form of runc\'s global flags', async (t) => {
  const env = new TestEnv(t);
  const log = join(env.dir, 'log.json');
  const forms: Array<(id: string, bundle: string) => string[]> = [
    (id, bundle) => [`--root=${env.root}`, 'create', '--bundle', bundle, id],
    (id, bundle) => ['--debug', '--root', env.root, 'create', '-b', bundle, id],
    (id, bundle) => ['--log', log, '--log-format', 'json', '--root', env.root, '--systemd-cgroup', 'create', `--bundle=${bundle}`, id],
  ];
  for (const form of forms) {
    t.deepEqual(await lifecycle(t, env, (id, bundle) => [RUNBOX, form(id, bundle)]), ['--preforked'], form('ID', 'B').join(' '));
  }
});

test('an agent created from a shell\'s background job ignores no signal it serves: the shell\'s SIGINT and SIGQUIT stay with the shell', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '100'];
  });
  const id = env.id();
  // A non-interactive shell starts `&` jobs with SIGINT and SIGQUIT ignored, and exec keeps them ignored.
  const created = await runCommand('sh', ['-c', '"$@" </dev/null >/dev/null & wait $!', 'sh', RUNBOX, '--root', env.root, 'create', '--bundle', bundle, id]);
  t.is(created.code, 0, created.stderr);
  const ignored = BigInt(`0x${/^SigIgn:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${agentPid(env, id)}/status`, 'utf8'))![1]}`);
  for (const signal of [2, 3, 17]) t.is(ignored & (1n << BigInt(signal - 1)), 0n, `signal ${signal} is not ignored`);
  t.is((await env.run(['delete', '--force', id])).code, 0);
});
