// Container ids as runc 1.1 takes them (letters, digits and `_ + , - .` anywhere, not `.` or `..`): each works
// through the whole lifecycle, with the start in C, the agent and a microVM; the others are refused clearly.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DRIVER_ANNOTATION } from '../src/drivers/drivers.js';
import { RUNBOX, TestEnv, errorMessage, runCommand } from './helpers/runbox.js';

const WITHOUT_NODE = { ...process.env, PATH: '/nonexistent' };

test('ids that start with _ - . , + or hold commas go through create, start, exec, state, list, kill and delete', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '1000'];
  });
  const unique = env.id('x');
  const run = (args: string[], options: { env?: NodeJS.ProcessEnv } = {}) => runCommand(RUNBOX, ['--root', env.root, ...args], options);
  for (const id of [`_${unique}`, `-${unique}`, `.${unique}`, `,${unique}`, `a,b,${unique}`, `+${unique}`, `...${unique}`]) {
    // `--` ends the flags, as with runc: an id may start with `-`.
    const created = await run(['create', '--bundle', bundle, '--', id]);
    t.is(created.code, 0, `${id}: ${created.stderr}`);
    // Without node on the PATH only the C start can succeed; it leaves ids with a `+` to Node.
    const inC = !id.includes('+');
    const started = await run(['start', '--', id], inC ? { env: WITHOUT_NODE } : {});
    t.is(started.code, 0, `${id}: ${started.stderr}`);
    const exec = await run(['exec', '--', id, 'echo', 'inside']);
    t.deepEqual([exec.code, exec.stdout], [0, 'inside\n'], `${id}: ${exec.stderr}`);
    t.is(JSON.parse((await run(['state', '--', id])).stdout).id, id);
    t.true((await run(['list', '-q'])).stdout.split('\n').includes(id), id);
    t.is((await run(['kill', '--', id, 'KILL'])).code, 0, id);
    const deleted = await run(['delete', '--force', '--', id]);
    t.is(deleted.code, 0, `${id}: ${deleted.stderr}`);
    t.false(existsSync(join(env.root, id)), id);
  }
});

test('ids runc refuses are refused before anything is made, naming the id', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle();
  for (const id of ['.', '..', 'a/b', 'a:b', 'caf\u00e9', 'a b']) {
    const result = await env.run(['create', '--bundle', bundle, '--', id]);
    t.is(result.code, 1, JSON.stringify(id));
    t.is(result.stdout, '');
    t.is(errorMessage(result.stderr), `invalid container id "${id}": use letters, digits, and _ + , - . (not . or .. alone)`);
  }
  t.false(existsSync(env.root), 'the state root was never even created');
});

test('qemu: an id with commas (QEMU\'s option separator) runs in a microVM', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['echo', 'from the vm'];
    spec.annotations = { ...spec.annotations, [DRIVER_ANNOTATION]: 'qemu', 'io.runbox.qemu.accel': 'tcg' };
  });
  const id = `,vm,${env.id()}`;
  const result = await env.run(['run', '--bundle', bundle, '--', id]);
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, 'from the vm\n');
  t.false(existsSync(join(env.root, id)));
});
