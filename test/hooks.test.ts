import test from 'ava';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Hook, HookName } from '../src/oci/spec.js';
import { TestEnv, errorMessage } from './helpers/runbox.js';

/** A hook script on the host that records its name, argv and stdin (the state JSON) into DIR/NAME.N.json. */
function recorder(env: TestEnv): { dir: string; hook(name: string, extra?: Partial<Hook>): Hook } {
  const dir = join(env.dir, 'hooks');
  mkdirSync(dir, { recursive: true });
  const script = join(dir, 'record.sh');
  writeFileSync(script, `#!/bin/sh\nn=$(ls "${dir}" | grep -c '\\.json$')\nstdin=$(cat)\nprintf '{"n":%s,"argv":"%s","env":"%s","state":%s}' "$n" "$*" "$HOOK_ENV" "$stdin" > "${dir}/$1.$n.json"\n`);
  chmodSync(script, 0o755);
  return {
    dir,
    hook: (name, extra = {}) => ({ path: script, args: ['record.sh', name], env: [`HOOK_ENV=${name}-env`], ...extra }),
  };
}

function records(dir: string): Array<{ n: number; argv: string; env: string; state: any; name: string }> {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ ...JSON.parse(readFileSync(join(dir, f), 'utf8')), name: f.split('.')[0] }))
    .sort((a, b) => a.n - b.n);
}

test('all six hooks run in order, with the state JSON on stdin, their args and only their env', async (t) => {
  const env = new TestEnv(t);
  const rec = recorder(env);
  const names: HookName[] = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '0.2'];
    spec.hooks = Object.fromEntries(names.map((name) => [name, [rec.hook(name)]]));
    // startContainer runs inside the container: its path must resolve there, so mount the hooks dir in.
    spec.mounts!.push({ destination: rec.dir, type: 'bind', source: rec.dir, options: ['rbind'] });
  });
  const id = env.id();
  t.is((await env.run(['create', '--bundle', bundle, id])).code, 0);
  const afterCreate = records(rec.dir);
  t.deepEqual(afterCreate.map((r) => r.name), ['prestart', 'createRuntime', 'createContainer']);
  const pid = (await env.state(id)).pid;
  for (const r of afterCreate) {
    t.is(r.state.id, id);
    t.is(r.state.pid, pid, `${r.name} sees the container pid`);
    t.is(r.state.status, 'creating');
    t.is(r.state.bundle, bundle);
    t.is(r.argv, r.name, 'args after argv[0] reach the hook');
    t.is(r.env, `${r.name}-env`);
  }
  t.is((await env.run(['start', id])).code, 0);
  await env.waitForStatus(id, 'stopped');
  t.is((await env.run(['delete', id])).code, 0);
  const all = records(rec.dir);
  t.deepEqual(all.map((r) => r.name), names);
  t.is(all[3]!.state.status, 'created');
  t.is(all[4]!.state.status, 'running');
  t.is(all[5]!.state.status, 'stopped');
});

test('a failing prestart hook fails create, leaves nothing, and poststop still runs', async (t) => {
  const env = new TestEnv(t);
  const rec = recorder(env);
  const bundle = env.bundle((spec) => {
    spec.hooks = { prestart: [{ path: '/bin/false' }], poststop: [rec.hook('poststop')] };
  });
  const id = env.id();
  const result = await env.run(['create', '--bundle', bundle, id]);
  t.is(result.code, 1);
  t.regex(errorMessage(result.stderr), new RegExp(`container ${id}: prestart hook /bin/false exited with status 1`));
  t.false(existsSync(join(env.root, id)));
  t.deepEqual(records(rec.dir).map((r) => r.name), ['poststop']);
});

test('a failing createContainer hook fails create and leaves nothing', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.hooks = { createContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'echo broken >&2; exit 3'] }] };
  });
  const id = env.id();
  const result = await env.run(['create', '--bundle', bundle, id]);
  t.is(result.code, 1);
  t.regex(errorMessage(result.stderr), /createContainer hook \/bin\/sh/);
  t.false(existsSync(join(env.root, id)));
});

test('a hook that overruns its timeout is killed and fails create', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.hooks = { createRuntime: [{ path: '/bin/sleep', args: ['sleep', '30'], timeout: 1 }] };
  });
  const id = env.id();
  const started = Date.now();
  const result = await env.run(['create', '--bundle', bundle, id]);
  t.is(result.code, 1);
  t.regex(errorMessage(result.stderr), /createRuntime hook \/bin\/sleep timed out after 1 s/);
  t.true(Date.now() - started < 20_000);
  t.false(existsSync(join(env.root, id)));
});

test('failing poststart and poststop hooks are warnings: the other hooks and the lifecycle go on', async (t) => {
  const env = new TestEnv(t);
  const rec = recorder(env);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'echo running'];
    spec.hooks = {
      poststart: [{ path: '/bin/false' }, rec.hook('poststart')],
      poststop: [{ path: '/bin/false' }, rec.hook('poststop')],
    };
  });
  const id = env.id();
  const result = await env.run(['run', '--bundle', bundle, id]);
  t.is(result.code, 0);
  t.is(result.stdout, 'running\n');
  t.regex(result.stderr, /level=warning msg=".*poststart hook \/bin\/false exited with status 1/);
  t.regex(result.stderr, /level=warning msg=".*poststop hook \/bin\/false exited with status 1/);
  t.deepEqual(records(rec.dir).map((r) => r.name), ['poststart', 'poststop'], 'the hooks after the failing ones ran');
});

test('a failing startContainer hook fails start and stops the container', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '100'];
    spec.hooks = { startContainer: [{ path: '/bin/false' }] };
  });
  const id = env.id();
  t.is((await env.run(['create', '--bundle', bundle, id])).code, 0);
  const result = await env.run(['start', id]);
  t.is(result.code, 1);
  t.regex(errorMessage(result.stderr), /startContainer hook \/bin\/false/);
  await env.waitForStatus(id, 'stopped');
});
