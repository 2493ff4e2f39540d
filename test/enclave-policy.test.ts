// The policy the enclave's guest agent enforces (measured with the create request): strict by default — no exec
// into the container, its output not given to the host, its input not taken — and what a policy file allows.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RUNBOX, TestEnv, errorMessage, processesMentioning, runCommand, type Result } from './helpers/runbox.js';
import { enclaveBundle, enclaveEnv } from './helpers/enclave.js';

/**
 * `echo typed | runbox run`: the container's stdin a pipe. (Node's `pipe` stdio is a socket, which QEMU's socket
 * chardev drops at its end of file, before the guest has read it: a microVM's stdin is a shell's pipe here.)
 */
function runTyping(env: TestEnv, bundle: string): Promise<Result> {
  return runCommand('sh', ['-c', 'echo typed | "$0" --root "$1" run --bundle "$2" "$3"', RUNBOX, env.root, bundle, env.id()], { env: enclaveEnv(env) });
}

test('the default policy refuses exec and keeps the container\'s output in the VM; the container runs', async (t) => {
  const env = new TestEnv(t);
  const id = env.id();
  const bundle = enclaveBundle(env, { args: ['sh', '-c', 'echo secret-output; echo more >&2; echo done > /tmp/done; sleep 1000'] });
  const made = await env.run(['run', '-d', '--bundle', bundle, id], { env: enclaveEnv(env) });
  t.is(made.code, 0, made.stderr);
  t.is(made.stdout, '', 'nothing of the container\'s output reaches the caller');
  t.is((await env.state(id)).status, 'running');
  const exec = await env.run(['exec', id, 'cat', '/tmp/done']);
  t.is(exec.code, 1);
  t.is(exec.stdout, '');
  t.regex(errorMessage(exec.stderr), new RegExp(`container ${id}: exec .*: the enclave's policy does not allow exec`));
  t.is((await env.run(['delete', '--force', id])).code, 0);
  t.deepEqual(processesMentioning(join(env.root, id)), []);

  // A foreground run: the caller sees nothing of what the container writes, and gets its exit status.
  const quiet = await runTyping(env, enclaveBundle(env, { args: ['sh', '-c', 'echo hidden; read line; exit 3'] }));
  t.is(quiet.code, 3, quiet.stderr);
  t.is(quiet.stdout, '');
  t.regex(quiet.stderr, /the enclave's policy does not let the host read the container's output/);
});

test('a policy file allows exec, output and input', async (t) => {
  const env = new TestEnv(t);
  const id = env.id();
  const bundle = enclaveBundle(env, { args: ['sh', '-c', 'echo done > /tmp/done; sleep 1000'], policy: { exec: true } });
  const made = await env.run(['run', '-d', '--bundle', bundle, id], { env: enclaveEnv(env) });
  t.is(made.code, 0, made.stderr);
  // exec runs, under the same rule for its output: the exit status comes back, the output stays in the VM.
  const exec = await env.run(['exec', id, 'sh', '-c', 'while [ ! -e /tmp/done ]; do sleep 0.1; done; cat /tmp/done; exit 5']);
  t.is(exec.code, 5, exec.stderr);
  t.is(exec.stdout, '');
  t.is((await env.run(['delete', '--force', id])).code, 0);

  const echoed = await runTyping(env, enclaveBundle(env, { args: ['sh', '-c', 'read line; echo "got $line"'], policy: { output: true, input: true } }));
  t.is(echoed.code, 0, echoed.stderr);
  t.is(echoed.stdout, 'got typed\n');

  // Output without input: the container reads nothing of what the caller types.
  const deaf = await runTyping(env, enclaveBundle(env, { args: ['sh', '-c', 'read line; echo "got [$line]"'], policy: { output: true } }));
  t.is(deaf.code, 0, deaf.stderr);
  t.is(deaf.stdout, 'got []\n');
});

test('a policy file that is not one is refused, naming what is wrong, and nothing is left', async (t) => {
  const env = new TestEnv(t);
  for (const [policy, why] of [
    [{ exec: 'yes' }, /"exec" is not true or false/],
    [{ network: true }, /unknown key "network" \(expected exec, output, input\)/],
  ] as const) {
    const id = env.id();
    const bundle = enclaveBundle(env, { args: ['true'], policy: policy as never });
    const result = await env.run(['run', '--bundle', bundle, id], { env: enclaveEnv(env) });
    t.is(result.code, 1);
    t.regex(errorMessage(result.stderr), why);
    t.false(existsSync(join(env.root, id)));
    t.deepEqual(processesMentioning(join(env.root, id)), []);
  }
  const missing = enclaveBundle(env, { args: ['true'], annotations: { 'io.runbox.enclave.policy': 'nowhere.json' } });
  const result = await env.run(['run', '--bundle', missing, env.id()], { env: enclaveEnv(env) });
  t.is(result.code, 1);
  t.regex(errorMessage(result.stderr), /io\.runbox\.enclave\.policy: cannot read the enclave policy .*nowhere\.json/);
});
