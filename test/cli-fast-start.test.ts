// `runbox start` runs in C (dist/runbox-start, native/cli/runbox-start.c) for a created container without
// start hooks, and in Node for everything else. Run with a PATH that has no node, bin/runbox can only succeed
// through the C path; the Node path is bin/runbox.cjs run by node directly. Both must give the same container,
// the same state.json, the same errors.
import test from 'ava';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Spec } from '../src/oci/spec.js';
import { PROJECT, RUNBOX, TestEnv, errorMessage, runCommand, type Result } from './helpers/runbox.js';

const NODE_CLI = join(PROJECT, 'bin', 'runbox.cjs');
/** An environment in which nothing but the C path can start a container. */
const WITHOUT_NODE = { ...process.env, PATH: '/nonexistent' };

/** create, with the container's stdout in a file (create hands its stdio to the container, as runc does). */
async function created(t: import('ava').ExecutionContext, env: TestEnv, edit: (spec: Spec) => void): Promise<{ id: string; out: string }> {
  const bundle = env.bundle(edit);
  const id = env.id();
  const out = join(env.dir, `${id}.out`);
  const result = await runCommand('sh', ['-c', '"$@" >"$0"', out, RUNBOX, '--root', env.root, 'create', '--bundle', bundle, id]);
  t.is(result.code, 0, result.stderr);
  return { id, out };
}

/** The files of a container's state directory, less the VM port leases (which port a start leases is chance). */
function stateDirectory(env: TestEnv, id: string): string[] {
  return readdirSync(join(env.root, id)).filter((name) => !/^agent-\d+\.lock$/.test(name)).sort();
}

function stateFile(env: TestEnv, id: string): string {
  return readFileSync(join(env.root, id, 'state.json'), 'utf8');
}

/** What the Node runtime writes once it has changed the record's status: JSON.stringify of the record read back. */
function withStatus(stateJson: string, status: string): string {
  return JSON.stringify({ ...(JSON.parse(stateJson) as object), status });
}

async function waitForOutput(path: string, text: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const output = existsSync(path) ? readFileSync(path, 'utf8') : '';
    if (output.includes(text) || Date.now() > deadline) return output;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An error line without its time, and the exit status: what must not differ between the two paths. */
function failure(result: Result): { code: number | null; stdout: string; stderr: string } {
  return { code: result.code, stdout: result.stdout, stderr: result.stderr.replace(/^time="[^"]+"/gm, 'time=T') };
}

function viaNode(env: TestEnv, args: string[]): Promise<Result> {
  return runCommand('node', [NODE_CLI, '--root', env.root, ...args]);
}

/** Starts one container without Node and one with it: the same output, status and state.json. */
async function startsLikeNode(t: import('ava').ExecutionContext, env: TestEnv, edit: (spec: Spec) => void) {
  const program = (spec: Spec) => {
    spec.process!.args = ['sh', '-c', 'echo "started in $(hostname)"; exec sleep 1000'];
    spec.hostname = 'fast';
    edit(spec);
  };
  const [fast, slow] = [await created(t, env, program), await created(t, env, program)];
  const [fastBefore, slowBefore] = [stateFile(env, fast.id), stateFile(env, slow.id)];

  const started = await runCommand(RUNBOX, ['--root', env.root, 'start', fast.id], { env: WITHOUT_NODE });
  t.deepEqual(started, { code: 0, stdout: '', stderr: '' });
  t.is((await viaNode(env, ['start', slow.id])).code, 0);

  t.is(await waitForOutput(fast.out, '\n'), 'started in fast\n');
  t.is(await waitForOutput(slow.out, '\n'), 'started in fast\n');
  t.is((await env.state(fast.id)).status, 'running');
  t.is(stateFile(env, fast.id), withStatus(fastBefore, 'running'), 'state.json is what the Node runtime writes');
  t.is(stateFile(env, slow.id), withStatus(slowBefore, 'running'));
  t.deepEqual(stateDirectory(env, fast.id), stateDirectory(env, slow.id), 'nothing else is left in the state directory');
  for (const id of [fast.id, slow.id]) t.is((await env.run(['delete', '--force', id])).code, 0);
}


test('start without Node: the emulated container runs, and its state.json is the one the Node path writes', async (t) => {
  await startsLikeNode(t, new TestEnv(t), () => {});
});

test('start without Node: the same for a container in a microVM', async (t) => {
  await startsLikeNode(t, new TestEnv(t), (spec) => {
    spec.annotations = { ...spec.annotations, 'io.runbox.driver': 'qemu', 'io.runbox.qemu.accel': 'tcg' };
  });
});

test('runc\'s global flags, in each form, reach the C path; an unknown flag is Node\'s to report', async (t) => {
  const env = new TestEnv(t);
  const log = join(env.dir, 'log.json');
  const forms: Array<(id: string) => string[]> = [
    (id) => [`--root=${env.root}`, 'start', id],
    (id) => ['--debug', '--log', log, '--log-format', 'json', '--root', env.root, '--systemd-cgroup', 'start', id],
    (id) => ['--driver', 'qemu', '--root', env.root, '--log-format=text', '--criu', 'criu', 'start', id],
  ];
  for (const form of forms) {
    const { id, out } = await created(t, env, (spec) => (spec.process!.args = ['echo', 'flags understood']));
    t.deepEqual(await runCommand(RUNBOX, form(id), { env: WITHOUT_NODE }), { code: 0, stdout: '', stderr: '' }, form('ID').join(' '));
    t.is(await waitForOutput(out, '\n'), 'flags understood\n');
  }
  const { id } = await created(t, env, (spec) => (spec.process!.args = ['true']));
  const unknown = ['--root', env.root, '--no-such-flag', 'start', id];
  t.deepEqual(failure(await runCommand(RUNBOX, unknown)), failure(await runCommand('node', [NODE_CLI, ...unknown])));
  t.is(errorMessage((await runCommand(RUNBOX, unknown)).stderr), 'flag provided but not defined: -no-such-flag');
});

test('a poststart hook still runs: start with hooks goes to Node', async (t) => {
  const env = new TestEnv(t);
  const record = join(env.dir, 'poststart.json');
  const { id, out } = await created(t, env, (spec) => {
    spec.process!.args = ['sh', '-c', 'echo hooked; exec sleep 1000'];
    spec.hooks = { poststart: [{ path: '/bin/sh', args: ['sh', '-c', `cat > ${record}`] }] };
  });
  t.is((await env.run(['start', id])).code, 0);
  t.is(await waitForOutput(out, '\n'), 'hooked\n');
  const state = JSON.parse(readFileSync(record, 'utf8')) as { id: string; status: string };
  t.deepEqual([state.id, state.status], [id, 'running'], 'the hook got the state of the running container');
});

test('a start the agent refuses: the C path stops the container and reports it as Node does, in --log too', async (t) => {
  const env = new TestEnv(t);
  // capset refuses an effective set that is not within the permitted one: the agent fails `start` itself.
  const refused = (spec: Spec) => {
    spec.process!.args = ['echo', 'never'];
    spec.process!.capabilities = { ...spec.process!.capabilities, permitted: [], effective: ['CAP_SYS_ADMIN'] };
  };
  const [fast, slow] = [await created(t, env, refused), await created(t, env, refused)];
  const [fastBefore, slowBefore] = [stateFile(env, fast.id), stateFile(env, slow.id)];
  const [fastLog, slowLog] = [join(env.dir, 'fast.log'), join(env.dir, 'slow.log')];
  const fastResult = await runCommand(RUNBOX, ['--root', env.root, '--log', fastLog, '--log-format', 'json', 'start', fast.id], { env: WITHOUT_NODE });
  const slowResult = await viaNode(env, ['--log', slowLog, '--log-format', 'json', 'start', slow.id]);
  t.is(errorMessage(fastResult.stderr), `container ${fast.id}: capset: operation not permitted`);
  t.deepEqual(failure(fastResult), failure({ ...slowResult, stderr: slowResult.stderr.replaceAll(slow.id, fast.id) }));
  const logged = (path: string, id: string) => {
    const line = JSON.parse(readFileSync(path, 'utf8')) as { level: string; msg: string; time: string };
    t.regex(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    return { level: line.level, msg: line.msg.replace(id, 'ID') };
  };
  t.deepEqual(logged(fastLog, fast.id), logged(slowLog, slow.id));
  t.is(stateFile(env, fast.id), withStatus(fastBefore, 'stopped'));
  t.is(stateFile(env, slow.id), withStatus(slowBefore, 'stopped'));
  t.is((await env.state(fast.id)).status, 'stopped');
  t.is(readFileSync(fast.out, 'utf8'), '', 'the program never ran');
});

test('start of a running container, of a stopped one, of a missing id: the Node path\'s error and exit status', async (t) => {
  const env = new TestEnv(t);
  const running = await created(t, env, (spec) => (spec.process!.args = ['sleep', '1000']));
  const stopped = await created(t, env, (spec) => (spec.process!.args = ['true']));
  for (const { id } of [running, stopped]) t.is((await env.run(['start', id])).code, 0);
  await env.waitForStatus(stopped.id, 'stopped');
  const cases: Array<[string, RegExp]> = [
    [running.id, /cannot start an already running container/],
    [stopped.id, /cannot start a container that has stopped/],
    ['ghost', /container ghost does not exist/],
  ];
  for (const [id, message] of cases) {
    const viaC = await env.run(['start', id]);
    t.is(viaC.code, 1);
    t.regex(errorMessage(viaC.stderr), message);
    t.deepEqual(failure(viaC), failure(await viaNode(env, ['start', id])));
  }
});

test('two starts of one container at once: exactly one succeeds, and the program runs once', async (t) => {
  const env = new TestEnv(t);
  const { id, out } = await created(t, env, (spec) => (spec.process!.args = ['sh', '-c', 'echo once; exec sleep 1000']));
  const results = await Promise.all([env.run(['start', id]), env.run(['start', id])]);
  t.deepEqual(results.map((result) => result.code).sort(), [0, 1]);
  t.regex(errorMessage(results.find((result) => result.code === 1)!.stderr), /cannot start an already running container/);
  await waitForOutput(out, '\n');
  t.is((await env.state(id)).status, 'running');
  await new Promise((r) => setTimeout(r, 200));
  t.is(readFileSync(out, 'utf8'), 'once\n');
});

test('without dist/runbox-start, bin/runbox starts through Node alone', async (t) => {
  const env = new TestEnv(t);
  // A copy of bin/runbox beside no dist/: the entry it runs is the project's own (node resolves the link).
  const bin = join(env.dir, 'project', 'bin');
  mkdirSync(bin, { recursive: true });
  copyFileSync(RUNBOX, join(bin, 'runbox'));
  symlinkSync(NODE_CLI, join(bin, 'runbox.cjs'));
  const { id, out } = await created(t, env, (spec) => (spec.process!.args = ['echo', 'through node']));
  t.is((await runCommand(join(bin, 'runbox'), ['--root', env.root, 'start', id], { env: WITHOUT_NODE })).code, 127, 'it needs node');
  t.deepEqual(await runCommand(join(bin, 'runbox'), ['--root', env.root, 'start', id]), { code: 0, stdout: '', stderr: '' });
  t.is(await waitForOutput(out, '\n'), 'through node\n');
});

test('a state.json not in the form runbox writes goes to Node, which reads it as JSON and rewrites it', async (t) => {
  const env = new TestEnv(t);
  const { id, out } = await created(t, env, (spec) => (spec.process!.args = ['echo', 'read by node']));
  const compact = stateFile(env, id);
  writeFileSync(join(env.root, id, 'state.json'), JSON.stringify(JSON.parse(compact), null, 2));
  t.is((await runCommand(RUNBOX, ['--root', env.root, 'start', id], { env: WITHOUT_NODE })).code, 127, 'the C path declined it');
  t.deepEqual(await env.run(['start', id]), { code: 0, stdout: '', stderr: '' });
  t.is(await waitForOutput(out, '\n'), 'read by node\n');
  t.is(stateFile(env, id), withStatus(compact, 'running'));
});
