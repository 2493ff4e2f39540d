import test from 'ava';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout } from 'node:timers/promises';
import { TestEnv, errorMessage, mountsUnder, processesMentioning, processesWithEnvironment } from './helpers/runbox.js';

/** Every failure: exit 1, nothing on stdout, one runc-style line naming what is wrong. */
function assertFailure(t: import('ava').ExecutionContext, result: { code: number | null; stdout: string; stderr: string }, pattern: RegExp) {
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.regex(result.stderr, /^time="[^"]+" level=error msg=".*"\n$/);
  t.regex(errorMessage(result.stderr), pattern);
}

/** create, with a marker in its environment that every process it starts inherits but the container's. */
function markedCreate(env: TestEnv, bundle: string, id: string, globalFlags: string[] = []) {
  return env.run([...globalFlags, 'create', '--bundle', bundle, id], { env: { ...process.env, RUNBOX_TEST_MARK: id } });
}

/** A failed (marked) create leaves nothing: no state, no process, no mount. */
async function assertNothingLeft(t: import('ava').ExecutionContext, env: TestEnv, id: string, bundle?: string) {
  t.false(existsSync(join(env.root, id)), 'no state directory');
  t.deepEqual(processesMentioning(join(env.root, id)), [], 'no agent process');
  // An agent the launcher forked for it dies with the CLI (a SIGKILL already sent when create exits).
  for (let i = 0; i < 20 && processesWithEnvironment(`RUNBOX_TEST_MARK=${id}`).length; i++) await setTimeout(50);
  t.deepEqual(processesWithEnvironment(`RUNBOX_TEST_MARK=${id}`), [], 'no process started by create');
  if (bundle) t.deepEqual(mountsUnder(bundle), [], 'no mount under the bundle');
}

test('operations on a missing container name it', async (t) => {
  const env = new TestEnv(t);
  for (const args of [['state', 'ghost'], ['start', 'ghost'], ['kill', 'ghost'], ['delete', 'ghost'], ['ps', 'ghost'], ['exec', 'ghost', '--', 'true']]) {
    assertFailure(t, await env.run(args), /container ghost does not exist/);
  }
});

test('invalid ids are refused before anything touches the disk', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle();
  for (const id of ['..', 'a/b', 'x'.repeat(1025), 'has space', 'a:b']) {
    assertFailure(t, await env.run(['create', '--bundle', bundle, id]), /invalid container id/);
  }
  assertFailure(t, await env.run(['create', '--bundle', bundle, '']), /container id cannot be empty/);
  t.false(existsSync(env.root), 'the state root was never even created');
});

test('bad bundles fail create with runc\'s messages and leave nothing', async (t) => {
  const env = new TestEnv(t);
  const cases: Array<[string, (bundle: string) => void, RegExp]> = [
    ['no config.json', (b) => rmSync(join(b, 'config.json')), /JSON specification file config.json not found/],
    ['invalid JSON', (b) => writeFileSync(join(b, 'config.json'), '{"ociVersion": '), /invalid JSON in .*config.json/],
    ['no process', (b) => edit(b, (s) => delete s.process), /process property must not be empty/],
    ['invalid ociVersion', (b) => edit(b, (s) => (s.ociVersion = 'invalid')), /invalid ociVersion "invalid"/],
    ['empty args', (b) => edit(b, (s) => (s.process.args = [])), /args must not be empty/],
    ['missing rootfs', (b) => rmSync(join(b, 'rootfs'), { recursive: true }), /invalid rootfs: stat .*rootfs: no such file or directory/],
    ['relative cwd', (b) => edit(b, (s) => (s.process.cwd = 'tmp')), /cwd property must be an absolute path/],
    ['unknown capability', (b) => edit(b, (s) => (s.process.capabilities.bounding = ['CAP_FLY'])), /unknown capability "CAP_FLY"/],
    ['unknown driver', (b) => edit(b, (s) => (s.annotations = { 'io.runbox.driver': 'warp' })), /unknown driver "warp"/],
    ['relative hook path', (b) => edit(b, (s) => (s.hooks = { prestart: [{ path: 'hook.sh' }] })), /hooks.prestart: path "hook.sh" must be absolute/],
  ];
  for (const [name, breakIt, pattern] of cases) {
    const bundle = env.bundle();
    breakIt(bundle);
    const id = env.id();
    const result = await markedCreate(env, bundle, id);
    assertFailure(t, result, pattern);
    t.true(result.stderr.includes(id) || /config.json|rootfs|args|process|cwd|capability|driver|hooks|ociVersion/.test(result.stderr), name);
    await assertNothingLeft(t, env, id, bundle);
  }
});

test('a missing binary fails create, not start, and leaves no process or mount', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['/bin/nope'];
  });
  const id = env.id();
  const result = await markedCreate(env, bundle, id);
  assertFailure(t, result, new RegExp(`container ${id}: exec: "/bin/nope": stat /bin/nope: no such file or directory`));
  await assertNothingLeft(t, env, id, bundle);

  const inPath = env.bundle((spec) => {
    spec.process!.args = ['nope'];
  });
  const id2 = env.id();
  assertFailure(t, await markedCreate(env, inPath, id2), /exec: "nope": executable file not found in \$PATH/);
  await assertNothingLeft(t, env, id2, inPath);
});

test('a duplicate id is refused and the first container is untouched', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle();
  const id = env.id();
  t.is((await env.run(['create', '--bundle', bundle, id])).code, 0);
  const before = await env.state(id);
  assertFailure(t, await env.run(['create', '--bundle', bundle, id]), new RegExp(`container with ID ${id} already exists`));
  t.deepEqual(await env.state(id), before);
});

test('a terminal without a console socket cannot be created detached', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.terminal = true;
  });
  const id = env.id();
  assertFailure(t, await markedCreate(env, bundle, id), /cannot allocate tty if runbox will detach without setting console socket/);
  await assertNothingLeft(t, env, id, bundle);
});

test('errors go to the --log file as JSON lines, as containerd\'s runc shim reads them', async (t) => {
  const env = new TestEnv(t);
  const log = join(env.dir, 'log.json');
  const result = await env.run(['--log', log, '--log-format', 'json', 'state', 'ghost']);
  assertFailure(t, result, /container ghost does not exist/);
  const lines = readFileSync(log, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  t.is(lines.length, 1);
  t.is(lines[0].level, 'error');
  t.regex(lines[0].msg, /container ghost does not exist/);
  t.false(Number.isNaN(Date.parse(lines[0].time)));
});

test('an unknown driver is refused clearly, and nothing is left', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle();
  const id = env.id();
  assertFailure(t, await markedCreate(env, bundle, id, ['--driver', 'hyperv']), /unknown driver "hyperv" \(expected one of emulated, qemu, enclave, auto\)/);
  await assertNothingLeft(t, env, id, bundle);
  const viaEnv = await env.run(['create', '--bundle', bundle, id], { env: { ...process.env, RUNBOX_DRIVER: 'bogus' } });
  assertFailure(t, viaEnv, /unknown driver "bogus"/);
  const annotated = env.bundle((spec) => {
    spec.annotations = { 'io.runbox.driver': 'emulated' };
  });
  const won = await env.run(['create', '--bundle', annotated, id], { env: { ...process.env, RUNBOX_DRIVER: 'bogus' } });
  t.is(won.code, 0, 'the annotation wins over RUNBOX_DRIVER');
});

test('a state root with a half-written container is still listed and can be deleted', async (t) => {
  const env = new TestEnv(t);
  mkdirSync(join(env.root, 'half'), { recursive: true });
  writeFileSync(join(env.root, 'half', 'state.json'), JSON.stringify({ ociVersion: '1.0.2', id: 'half', status: 'creating', pid: 0, bundle: '/nowhere', rootfs: '/nowhere/rootfs', created: new Date().toISOString(), owner: '', driver: 'emulated' }));
  writeFileSync(join(env.root, 'half', 'lock'), '');
  const list = JSON.parse((await env.run(['list', '--format', 'json'])).stdout) as Array<{ id: string; status: string }>;
  t.deepEqual(list.map((s) => [s.id, s.status]), [['half', 'creating']]);
  t.is((await env.run(['delete', 'half'])).code, 0);
  t.deepEqual(readdirSync(env.root), []);
});

function edit(bundle: string, change: (spec: any) => void): void {
  const path = join(bundle, 'config.json');
  const spec = JSON.parse(readFileSync(path, 'utf8'));
  change(spec);
  writeFileSync(path, JSON.stringify(spec));
}
