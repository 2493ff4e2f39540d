// What a command prints reaches a pipe whole, even when the reader is slow: the pipe holds 64 KiB, and the rest
// waits in the CLI until the reader takes it (containerd's runc shim reads `runbox state` through a pipe).
import test from 'ava';
import { RUNBOX, TestEnv, runCommand } from './helpers/runbox.js';

const BIG = 100_000;

/** Runs runbox with its stdout into a pipe whose reader only starts reading a second later; gives the byte count. */
async function bytesThroughSlowPipe(env: TestEnv, args: string[]): Promise<{ bytes: number; stderr: string }> {
  const quoted = ['--root', env.root, ...args].map((arg) => `'${arg}'`).join(' ');
  const result = await runCommand('sh', ['-c', `'${RUNBOX}' ${quoted} | { sleep 1; wc -c; }`]);
  return { bytes: Number(result.stdout.trim()), stderr: result.stderr };
}

test('state, list and exec give a slow pipe all of their output', async (t) => {
  const env = new TestEnv(t);
  const annotations = { 'test.big': 'x'.repeat(BIG) };
  const { id } = await env.running(['sleep', '1000'], (spec) => {
    spec.annotations = annotations;
  });
  const whole = (await env.run(['state', id])).stdout;
  t.true(whole.length > BIG);

  const state = await bytesThroughSlowPipe(env, ['state', id]);
  t.is(state.bytes, Buffer.byteLength(whole), state.stderr);

  const list = (await env.run(['list', '--format', 'json'])).stdout;
  t.true(list.length > BIG);
  t.is((await bytesThroughSlowPipe(env, ['list', '--format', 'json'])).bytes, Buffer.byteLength(list));

  t.is((await bytesThroughSlowPipe(env, ['exec', id, 'head', '-c', '1000000', '/dev/zero'])).bytes, 1_000_000);
});
