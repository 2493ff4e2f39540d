// A damaged ROOT/ID/state.json (truncated, garbage, `{}`, `null`, a field of the wrong type, another container's
// copied in): every command names the container and the file, list goes on past it, and delete --force ends the
// container's processes and cgroups from its directory alone, never touching the other container.
import test from 'ava';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupsLeft } from './helpers/cgroups.js';
import { TestEnv, errorMessage, processesMarked, processesWithEnvironment, type Result } from './helpers/runbox.js';

type Damage = (statePath: string, otherStatePath: string) => void;

const DAMAGES: Array<[string, Damage]> = [
  ['truncated', (path) => writeFileSync(path, readFileSync(path).subarray(0, 40))],
  ['garbage', (path) => writeFileSync(path, '\u0000\u0001not json at all')],
  ['{}', (path) => writeFileSync(path, '{}')],
  ['null', (path) => writeFileSync(path, 'null')],
  ['a pid that is not one', (path) => writeFileSync(path, readFileSync(path, 'utf8').replace(/"pid":\d+/, '"pid":"1"'))],
  ['another container\'s copied in', (path, other) => copyFileSync(other, path)],
];

function assertNamedFailure(t: import('ava').ExecutionContext, result: Result, id: string, file: string, what: string) {
  t.is(result.code, 1, `${what}: ${result.stdout}`);
  t.is(result.stdout, '', what);
  t.regex(result.stderr, /^time="[^"]+" level=error msg=".*"\n$/, what);
  const message = errorMessage(result.stderr);
  t.true(message.startsWith(`container ${id}: ${file} `), `${what}: ${message}`);
}


test('a damaged state.json is named by every command, list goes on past it, and delete --force ends only its container', async (t) => {
  const env = new TestEnv(t);
  const running = async (id: string, parent: string) => {
    const bundle = env.bundle((spec) => {
      spec.process!.args = ['sleep', '1000'];
      spec.linux!.cgroupsPath = `${parent}/ctr`;
    });
    const result = await env.run(['run', '-d', '--bundle', bundle, id], { env: { ...process.env, RUNBOX_TEST_MARK: id } });
    t.is(result.code, 0, result.stderr);
  };
  const other = env.id('other');
  await running(other, `/runbox-test-${other}`);
  const otherState = await env.state(other);

  for (const [kind, damage] of DAMAGES) {
    const victim = env.id('victim');
    const parent = `/runbox-test-${victim}`;
    await running(victim, parent);
    const file = join(env.root, victim, 'state.json');
    damage(file, join(env.root, other, 'state.json'));

    for (const args of [['state', victim], ['kill', victim, 'KILL'], ['start', victim], ['exec', victim, 'true'], ['ps', victim], ['pause', victim], ['delete', victim]]) {
      assertNamedFailure(t, await env.run(args), victim, file, `${kind}: ${args[0]}`);
    }
    const list = await env.run(['list', '-q']);
    t.is(list.code, 0, `${kind}: list`);
    t.is(list.stdout, `${other}\n`, `${kind}: list shows the others`);
    t.true(errorMessage(list.stderr.replace('level=warning', 'level=error')).startsWith(`container ${victim}: ${file} `), `${kind}: list names it: ${list.stderr}`);

    t.not(processesWithEnvironment(`RUNBOX_TEST_MARK=${victim}`).length, 0, `${kind}: the victim still runs before delete --force`);
    const deleted = await env.run(['delete', '--force', victim]);
    t.is(deleted.code, 0, `${kind}: ${deleted.stderr}`);
    t.deepEqual(await processesMarked(victim), [], `${kind}: delete --force ended the victim's agent and processes`);
    t.deepEqual(cgroupsLeft(parent), [], `${kind}: and its cgroups`);
    t.false(existsSync(join(env.root, victim)), `${kind}: and its state directory`);
    t.deepEqual(await env.state(other), otherState, `${kind}: the other container is untouched`);
  }
  t.not(processesWithEnvironment(`RUNBOX_TEST_MARK=${other}`).length, 0, 'the other container still runs');
});

test('a damaged config.json copy is named when start needs it', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '1000'];
  });
  const id = env.id();
  t.is((await env.run(['create', '--bundle', bundle, id])).code, 0);
  const file = join(env.root, id, 'config.json');
  writeFileSync(file, '{"ociVersion": ');
  assertNamedFailure(t, await env.run(['start', id]), id, file, 'start');
  t.is((await env.run(['delete', '--force', id])).code, 0);
});
