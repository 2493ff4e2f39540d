// A large config.json: 10 MB of annotations are carried (nothing sends them to the sandbox agent unless a hook
// there reads the state), and what cannot be carried — that state for such hooks, a create request over the
// agent's 4 MiB — is refused at create, saying how large and what the limit is, with nothing left behind.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Spec } from '../src/oci/spec.js';
import { TestEnv, errorMessage, processesMarked } from './helpers/runbox.js';

const TEN_MB = 10 * 1024 * 1024;

test('a container with 10 MB of annotations is created, started (in C and by Node), exec\'d into and deleted', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '1000'];
    spec.annotations = { 'test.big': 'x'.repeat(TEN_MB) };
  });
  const created = env.id();
  t.is((await env.run(['create', '--bundle', bundle, created])).code, 0);
  const started = await env.run(['start', created]);
  t.is(started.code, 0, started.stderr);
  const ran = env.id();
  const run = await env.run(['run', '-d', '--bundle', bundle, ran]);
  t.is(run.code, 0, run.stderr);
  for (const id of [created, ran]) {
    const state = await env.state(id);
    t.is(state.status, 'running');
    t.is((state.annotations as Record<string, string>)['test.big']!.length, TEN_MB);
    t.is((await env.run(['exec', id, 'true'])).code, 0);
    t.is((await env.run(['delete', '--force', id])).code, 0);
  }
});

test('what the sandbox agent cannot carry is refused at create, with its size and the limit, and nothing is left', async (t) => {
  const env = new TestEnv(t);
  const cases: Array<[string, (spec: Spec) => void, RegExp]> = [
    ['10 MB of annotations and a startContainer hook', (spec) => {
      spec.annotations = { 'test.big': 'x'.repeat(TEN_MB) };
      spec.hooks = { startContainer: [{ path: '/bin/true' }] };
    }, /: the state its createContainer and startContainer hooks would be given is 1048\d{4} bytes \(the annotations are in it\), more than the emulated driver carries to them \(\d+\)$/],
    ['5 MB of environment', (spec) => {
      spec.process!.env!.push(`BIG=${'x'.repeat(5 * 1024 * 1024)}`);
    }, /: config\.json is too large for the sandbox agent: its create request .* would be 524\d{4} bytes, more than the 4194304 it takes$/],
  ];
  for (const [name, edit, message] of cases) {
    const bundle = env.bundle(edit);
    const id = env.id();
    const result = await env.run(['create', '--bundle', bundle, id], { env: { ...process.env, RUNBOX_TEST_MARK: id } });
    t.is(result.code, 1, name);
    t.regex(errorMessage(result.stderr), new RegExp(`^container ${id}${message.source}`), name);
    t.false(existsSync(join(env.root, id)), `${name}: no state`);
    t.deepEqual(await processesMarked(id), [], `${name}: no process`);
  }
});
