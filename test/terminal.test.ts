import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RUNBOX, TestEnv, errorMessage, runCommand } from './helpers/runbox.js';

const RECVTTY = fileURLToPath(new URL('../../test/helpers/recvtty.py', import.meta.url));

/** Starts the console-socket receiver; resolves once it listens, with a promise of what it will have printed. */
function consoleSocket(path: string, typed = ''): Promise<{ output: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [RECVTTY, path, typed], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    const done = new Promise<string>((finish) => child.on('close', () => finish(output)));
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.startsWith('listening\n')) resolve({ output: done });
    });
    child.on('error', reject);
  });
}

test('--console-socket receives the pty master; the container sees a terminal', async (t) => {
  const env = new TestEnv(t);
  const socket = join(env.dir, 'console.sock');
  const received = await consoleSocket(socket, 'typed input\n');
  const bundle = env.bundle((spec) => {
    spec.process!.terminal = true;
    spec.process!.args = ['sh', '-c', 'read line; echo "got:$line"; [ -t 0 ] && echo stdin-is-a-tty; tty'];
  });
  const id = env.id();
  const created = await env.run(['create', '--console-socket', socket, '--bundle', bundle, id]);
  t.is(created.code, 0, created.stderr);
  t.is((await env.run(['start', id])).code, 0);
  const output = (await received.output).replace(/\r/g, '');
  t.regex(output, /isatty=True/);
  t.regex(output, /got:typed input/);
  t.regex(output, /stdin-is-a-tty/);
  t.regex(output, /\/dev\/pts\/\d+/);
});

test('a console socket without a terminal is refused', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle();
  const result = await env.run(['create', '--console-socket', join(env.dir, 'none.sock'), '--bundle', bundle, env.id()]);
  t.is(result.code, 1);
  t.regex(errorMessage(result.stderr), /cannot use console socket if runbox will not detach or allocate tty/);
});

test('exec --tty relays a pty through the CLI', async (t) => {
  const env = new TestEnv(t);
  const { id } = await env.running(['sleep', '100']);
  const result = await env.run(['exec', '--tty', id, '--', 'sh', '-c', '[ -t 1 ] && echo tty-out; tty']);
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /tty-out/);
  t.regex(result.stdout, /\/dev\/pts\/\d+/);
});

test('a foreground run with a terminal relays the pty, its window size and the exit status', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.terminal = true;
    spec.process!.args = ['sh', '-c', '[ -t 0 ] && echo "size=$(stty size)"; exit 4'];
  });
  // script(1) gives the CLI a terminal of its own, sized as a user's would be.
  const command = `stty cols 100 rows 30; ${RUNBOX} --root ${env.root} run --bundle ${bundle} ${env.id()}`;
  const result = await runCommand('script', ['-qec', command, '/dev/null']);
  t.is(result.code, 4, result.stdout);
  t.regex(result.stdout, /size=30 100/);
});
