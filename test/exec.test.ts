import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestEnv, errorMessage } from './helpers/runbox.js';

async function runningContainer(env: TestEnv): Promise<string> {
  const { id } = await env.running(['sleep', '100'], (spec) => {
    spec.hostname = 'exec-target';
    spec.process!.env = ['PATH=/bin:/sbin', 'FROM_CONFIG=yes'];
  });
  return id;
}

test('exec runs inside the container\'s namespaces and relays output and exit status', async (t) => {
  const env = new TestEnv(t);
  const id = await runningContainer(env);
  const result = await env.run(['exec', id, '--', 'sh', '-c', 'hostname; echo "env=$FROM_CONFIG"; ps -o comm | grep -cx sleep; echo oops >&2; exit 5']);
  t.is(result.code, 5);
  t.is(result.stdout, 'exec-target\nenv=yes\n1\n');
  t.is(result.stderr, 'oops\n');
});

test('exec feeds its stdin to the process', async (t) => {
  const env = new TestEnv(t);
  const id = await runningContainer(env);
  const result = await env.run(['exec', id, '--', 'sh', '-c', 'tr a-z A-Z'], { input: 'shout this\n' });
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, 'SHOUT THIS\n');
});

test('exec honours --env, --cwd and --user, and a --process file', async (t) => {
  const env = new TestEnv(t);
  const id = await runningContainer(env);
  const flags = await env.run(['exec', '--env', 'EXTRA=1', '--cwd', '/tmp', '--user', '1000:1000', id, '--', 'sh', '-c', 'echo "$EXTRA $(pwd) $(id -u):$(id -g)"']);
  t.is(flags.stdout, '1 /tmp 1000:1000\n', flags.stderr);
  const file = join(env.dir, 'process.json');
  writeFileSync(file, JSON.stringify({ args: ['sh', '-c', 'echo "from file $X"'], env: ['PATH=/bin', 'X=42'], cwd: '/', user: { uid: 0, gid: 0 } }));
  const fromFile = await env.run(['exec', '--process', file, id]);
  t.is(fromFile.stdout, 'from file 42\n', fromFile.stderr);
});

test('a --process file is the whole process, as with runc: no user means uid 0, no cwd is refused', async (t) => {
  const env = new TestEnv(t);
  const id = await runningContainer(env);
  const file = join(env.dir, 'process.json');
  writeFileSync(file, JSON.stringify({ args: ['sh', '-c', 'echo "$(id -u):$(id -g) $(pwd) [$FROM_CONFIG]"'], env: ['PATH=/bin'], cwd: '/tmp' }));
  const noUser = await env.run(['exec', '--process', file, id]);
  t.deepEqual([noUser.code, noUser.stdout], [0, '0:0 /tmp []\n'], noUser.stderr);
  writeFileSync(file, JSON.stringify({ args: ['true'], user: { uid: 5 } }));
  const noCwd = await env.run(['exec', '--process', file, id]);
  t.is(noCwd.code, 1);
  t.is(errorMessage(noCwd.stderr), `container ${id}: process file ${file}: cwd property must be an absolute path`);
});

test('as with runc, the command after the id keeps its own flags without a `--`', async (t) => {
  const env = new TestEnv(t);
  const id = await runningContainer(env);
  const result = await env.run(['exec', '-e', 'X=7', id, 'sh', '-c', 'echo "x=$X $1"', 'sh', '--not-a-runbox-flag']);
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, 'x=7 --not-a-runbox-flag\n');
});

test('exec into a stopped container and exec of a missing binary fail clearly', async (t) => {
  const env = new TestEnv(t);
  const id = await runningContainer(env);
  const missing = await env.run(['exec', id, '--', '/bin/nope']);
  t.is(missing.code, 1);
  t.regex(errorMessage(missing.stderr), new RegExp(`container ${id}: exec: "/bin/nope": stat /bin/nope: no such file or directory`));
  await env.run(['kill', id, 'KILL']);
  await env.waitForStatus(id, 'stopped');
  const stopped = await env.run(['exec', id, '--', 'true']);
  t.is(stopped.code, 1);
  t.regex(errorMessage(stopped.stderr), /cannot exec in a stopped container/);
});

test('ps lists the container\'s processes, exec\'d ones included', async (t) => {
  const env = new TestEnv(t);
  const id = await runningContainer(env);
  const before = JSON.parse((await env.run(['ps', '--format', 'json', id])).stdout) as number[];
  t.is(before.length, 1);
  t.is(before[0], (await env.state(id)).pid as number);
  t.is((await env.run(['exec', '-d', id, '--', 'sleep', '100'])).code, 0);
  const after = JSON.parse((await env.run(['ps', '--format', 'json', id])).stdout) as number[];
  t.is(after.length, 2);
  const table = await env.run(['ps', id]);
  t.regex(table.stdout, /UID\s+PID\s+PPID/);
  t.regex(table.stdout, /sleep 100/);
});
