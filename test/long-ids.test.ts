// Ids as long as runc takes them (255 characters, a file name's limit) under a state root of any length: the
// sockets of a container do not depend on how long its directory's path is. Longer ids are refused clearly.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RUNBOX, TestEnv, errorMessage, runCommand } from './helpers/runbox.js';

const WITHOUT_NODE = { ...process.env, PATH: '/nonexistent' };

test('a 255-character id and a 64-hex-digit one work under a long state root, start in C included', async (t) => {
  const env = new TestEnv(t);
  // As containerd's runc shim calls its runtime: --root ROOT/NAMESPACE, here under a long directory.
  const root = join(env.root, 'r'.repeat(120), 'k8s.io');
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '1000'];
  });
  for (const id of ['i'.repeat(255), 'f'.repeat(64)]) {
    const run = (args: string[], env_?: NodeJS.ProcessEnv) => runCommand(RUNBOX, ['--root', root, ...args], env_ ? { env: env_ } : {});
    // The test's own clean-up knows env.root only.
    t.teardown(() => run(['delete', '--force', id]));
    const created = await run(['create', '--bundle', bundle, id]);
    t.is(created.code, 0, created.stderr);
    // Without node on the PATH only the C start can succeed.
    const started = await run(['start', id], WITHOUT_NODE);
    t.is(started.code, 0, started.stderr);
    const exec = await run(['exec', id, 'echo', 'inside']);
    t.deepEqual([exec.code, exec.stdout], [0, 'inside\n'], exec.stderr);
    t.is(JSON.parse((await run(['state', id])).stdout).status, 'running');
    t.is((await run(['kill', id, 'KILL'])).code, 0);
    const deleted = await run(['delete', '--force', id]);
    t.is(deleted.code, 0, deleted.stderr);
    t.false(existsSync(join(root, id)));
  }
});

test('an id longer than 255 characters is refused with a clear message before anything is made', async (t) => {
  const env = new TestEnv(t);
  const result = await env.run(['create', '--bundle', env.bundle(), 'x'.repeat(256)]);
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.is(errorMessage(result.stderr), 'invalid container id: longer than 255 characters');
  t.false(existsSync(env.root));
});
