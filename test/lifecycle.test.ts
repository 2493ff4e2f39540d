import test from 'ava';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RUNBOX, TestEnv, processesMentioning, runCommand, errorMessage } from './helpers/runbox.js';

test('create, state, start, state, delete: the runc lifecycle', async (t) => {
  const env = new TestEnv(t);
  const shared = join(env.dir, 'shared');
  mkdirSync(shared);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'echo ran > /shared/marker; sleep 0.3'];
    spec.mounts!.push({ destination: '/shared', type: 'bind', source: shared, options: ['rbind'] });
  });
  const id = env.id();

  const created = await env.run(['create', '--bundle', bundle, id]);
  t.is(created.code, 0, created.stderr);
  t.is(created.stdout, '');
  const state = await env.state(id);
  t.is(state.status, 'created');
  t.is(state.id, id);
  t.is(state.bundle, bundle);
  t.is(state.ociVersion, '1.0.2');
  t.true(typeof state.pid === 'number' && state.pid > 0);
  t.true(existsSync(`/proc/${state.pid as number}`), 'the container process exists after create');
  t.false(existsSync(join(shared, 'marker')), 'the user program has not run before start');
  t.regex(state.created as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  t.is(state.rootfs, join(bundle, 'rootfs'));

  const started = await env.run(['start', id]);
  t.is(started.code, 0, started.stderr);
  t.is(started.stdout, '');
  // Nobody calls anything while the program finishes: state must still tell the truth.
  const stopped = await env.waitForStatus(id, 'stopped');
  t.is(stopped.pid, 0);
  t.is(readFileSync(join(shared, 'marker'), 'utf8'), 'ran\n');

  const deleted = await env.run(['delete', id]);
  t.is(deleted.code, 0, deleted.stderr);
  const gone = await env.run(['state', id]);
  t.is(gone.code, 1);
  t.is(gone.stdout, '');
  t.regex(errorMessage(gone.stderr), new RegExp(`container ${id} does not exist`));
  t.false(existsSync(join(env.root, id)));
});

test('the container writes to the stdio that create was given, after create has exited', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'echo to-stdout; echo to-stderr >&2'];
  });
  const id = env.id();
  const outFile = join(env.dir, 'out');
  const errFile = join(env.dir, 'err');
  const created = await runCommand('sh', ['-c', `"$0" --root "$1" create --bundle "$2" "$3" >"$4" 2>"$5"`, RUNBOX, env.root, bundle, id, outFile, errFile]);
  t.is(created.code, 0, readFileSync(errFile, 'utf8'));
  t.is((await env.run(['start', id])).code, 0);
  await env.waitForStatus(id, 'stopped');
  t.is(readFileSync(outFile, 'utf8'), 'to-stdout\n');
  t.is(readFileSync(errFile, 'utf8'), 'to-stderr\n');
});

test('run in the foreground prints the output and exits with the container status', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'echo hello; exit 7'];
  });
  const id = env.id();
  const result = await env.run(['run', '--bundle', bundle, id]);
  t.is(result.stdout, 'hello\n');
  t.is(result.code, 7);
  t.is((await env.run(['state', id])).code, 1, 'a foreground run removes the container afterwards');
});

test('run --detach leaves a running container; kill accepts runc signal forms', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'trap "exit 42" USR1; while true; do sleep 0.05; done'];
  });
  for (const signal of ['USR1', 'SIGUSR1', 'sigusr1', '10']) {
    const id = env.id();
    t.is((await env.run(['run', '--detach', '--bundle', bundle, id])).code, 0);
    t.is((await env.state(id)).status, 'running');
    await new Promise((r) => setTimeout(r, 150));
    const killed = await env.run(['kill', id, signal]);
    t.is(killed.code, 0, killed.stderr);
    await env.waitForStatus(id, 'stopped');
    const again = await env.run(['kill', id, 'KILL']);
    t.is(again.code, 1);
    t.regex(errorMessage(again.stderr), /container not running/);
    t.is((await env.run(['delete', id])).code, 0);
  }
});

test('kill defaults to SIGTERM, and --all reaches every process', async (t) => {
  const env = new TestEnv(t);
  const { id } = await env.running(['sh', '-c', 'sleep 100 & sleep 100 & wait']);
  await new Promise((r) => setTimeout(r, 200));
  const pids = JSON.parse((await env.run(['ps', '--format', 'json', id])).stdout) as number[];
  t.true(pids.length >= 3, `ps lists the shell and both sleeps: ${pids.join(',')}`);
  t.is((await env.run(['kill', '--all', id, 'KILL'])).code, 0);
  await env.waitForStatus(id, 'stopped');
  for (const pid of pids) t.false(existsSync(`/proc/${pid}/stat`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'), `pid ${pid} is gone`);

  // pid 1 of a pid namespace only gets the signals it handles (as with runc): trap TERM.
  const { id: id2 } = await env.running(['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.05; done']);
  t.is((await env.run(['kill', id2])).code, 0);
  await env.waitForStatus(id2, 'stopped');
});

test('as with runc, kill ID 0 checks that the container runs and sends nothing, and an empty signal is SIGTERM', async (t) => {
  const env = new TestEnv(t);
  const { id } = await env.running(['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.05; done']);
  const checked = await env.run(['kill', id, '0']);
  t.deepEqual([checked.code, checked.stdout, checked.stderr], [0, '', '']);
  t.is((await env.state(id)).status, 'running', 'signal 0 left it running');
  t.is((await env.run(['kill', '--all', id, '0'])).code, 0);
  const termed = await env.run(['kill', id, '']);
  t.is(termed.code, 0, termed.stderr);
  await env.waitForStatus(id, 'stopped');
  const stopped = await env.run(['kill', id, '0']);
  t.is(stopped.code, 1);
  t.regex(errorMessage(stopped.stderr), new RegExp(`container ${id}: container not running`));
});

test('delete refuses a running container without --force and removes everything with it', async (t) => {
  const env = new TestEnv(t);
  const { id } = await env.running(['sleep', '100']);
  const pid = (await env.state(id)).pid as number;
  const refused = await env.run(['delete', id]);
  t.is(refused.code, 1);
  t.regex(errorMessage(refused.stderr), new RegExp(`cannot delete container ${id} that is not stopped: running`));
  t.is((await env.state(id)).status, 'running');
  const forced = await env.run(['delete', '--force', id]);
  t.is(forced.code, 0, forced.stderr);
  t.false(existsSync(`/proc/${pid}/stat`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'));
  t.false(existsSync(join(env.root, id)));
  t.deepEqual(processesMentioning(join(env.root, id)), [], 'no agent is left for the container');
  const missing = await env.run(['delete', '--force', 'never-existed']);
  t.is(missing.code, 0, 'delete --force of a missing container succeeds quietly, as runc does');
  t.is(missing.stderr, '');
});

test('delete refuses a created container without --force (runtime.md), and --force takes its process with it', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle();
  const id = env.id();
  t.is((await env.run(['create', '--bundle', bundle, id])).code, 0);
  const pid = (await env.state(id)).pid as number;
  const refused = await env.run(['delete', id]);
  t.is(refused.code, 1);
  t.regex(errorMessage(refused.stderr), new RegExp(`cannot delete container ${id} that is not stopped: created`));
  t.is((await env.state(id)).status, 'created');
  t.is((await env.run(['delete', '--force', id])).code, 0);
  t.false(existsSync(`/proc/${pid}/stat`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'));
});

test('start refuses a running and a stopped container with runc messages', async (t) => {
  const env = new TestEnv(t);
  const { id } = await env.running(['sleep', '100']);
  const running = await env.run(['start', id]);
  t.is(running.code, 1);
  t.regex(errorMessage(running.stderr), /cannot start an already running container/);
  await env.run(['kill', id, 'KILL']);
  await env.waitForStatus(id, 'stopped');
  const stopped = await env.run(['start', id]);
  t.is(stopped.code, 1);
  t.regex(errorMessage(stopped.stderr), /cannot start a container that has stopped/);
});

test('list shows every container as a table or JSON', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '100'];
  });
  const a = env.id();
  const b = env.id();
  t.is((await env.run(['create', '--bundle', bundle, a])).code, 0);
  t.is((await env.run(['run', '-d', '--bundle', bundle, b])).code, 0);
  const table = await env.run(['list']);
  t.regex(table.stdout, /^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER/);
  t.regex(table.stdout, new RegExp(`${a}\\s+\\d+\\s+created\\s+${bundle}`));
  t.regex(table.stdout, new RegExp(`${b}\\s+\\d+\\s+running\\s+${bundle}`));
  const json = JSON.parse((await env.run(['list', '--format', 'json'])).stdout) as Array<{ id: string; status: string }>;
  t.deepEqual(json.map((s) => [s.id, s.status]).sort(), [[a, 'created'], [b, 'running']].sort());
});

test('spec writes runc\'s default config.json and refuses to overwrite it', async (t) => {
  const env = new TestEnv(t);
  const dir = join(env.dir, 'spec');
  mkdirSync(dir);
  t.is((await env.run(['spec', '--bundle', dir])).code, 0);
  const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  t.deepEqual(spec.process.args, ['sh']);
  t.is(spec.root.path, 'rootfs');
  const again = await env.run(['spec', '--bundle', dir]);
  t.is(again.code, 1);
  t.regex(errorMessage(again.stderr), /exists/);
});

test('features reports the spec features and says the emulated driver is not a VM boundary', async (t) => {
  const env = new TestEnv(t);
  const result = await env.run(['features']);
  t.is(result.code, 0);
  const features = JSON.parse(result.stdout);
  t.is(features.ociVersionMin, '1.0.0');
  t.true(features.hooks.includes('createContainer'));
  t.true(features.linux.namespaces.includes('pid'));
  t.is(features.annotations['io.runbox.driver.emulated.isolation'], 'namespaces');
  t.regex(features.annotations['io.runbox.driver.emulated.description'], /not a VM boundary/);
});

test('pause freezes a running container and resume thaws it', async (t) => {
  const env = new TestEnv(t);
  // The counter is replaced by rename, so a read never sees it half-written.
  const { id, bundle } = await env.running(['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; sleep 0.02; done']);
  const paused = await env.run(['pause', id]);
  t.is(paused.code, 0, paused.stderr);
  t.is((await env.state(id)).status, 'paused');
  const count = () => readFileSync(join(bundle, 'rootfs', 'count'), 'utf8');
  const frozen = count();
  await new Promise((r) => setTimeout(r, 300));
  t.is(count(), frozen, 'nothing runs while paused');
  t.regex(errorMessage((await env.run(['pause', id])).stderr), /container not running/);
  t.is((await env.run(['resume', id])).code, 0);
  t.is((await env.state(id)).status, 'running');
  // On a loaded machine the thawed loop may need a while to be scheduled again.
  for (let i = 0; i < 100 && count() === frozen; i++) await new Promise((r) => setTimeout(r, 100));
  t.not(count(), frozen, 'it runs again after resume');
  t.regex(errorMessage((await env.run(['resume', id])).stderr), /container not paused/);
});
