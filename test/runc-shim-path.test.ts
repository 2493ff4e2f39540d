// The way many operators first try runbox: containerd's own runc shim, with runbox as its runc binary
// (`BinaryName` in the runtime options; `ctr run --runc-binary`). That shim reaps the pid in create's
// --pid-file, so this proves runbox hands it runc's process tree.
import test from 'ava';
import { PrivateContainerd } from './helpers/containerd.js';
import { processesMentioning, RUNBOX } from './helpers/runbox.js';

const RUNC_RUNTIME = 'io.containerd.runc.v2';

test('containerd\'s runc shim with runbox as its binary runs a container and passes its output and exit status on', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const id = containerd.id('runc-path');
  const result = await containerd.run(id, ['sh', '-c', 'echo hello; exit 7'], ['--rm', '--runc-binary', RUNBOX], RUNC_RUNTIME);
  t.is(result.code, 7, result.stderr);
  t.is(result.stdout, 'hello\n');
  t.false((await containerd.tasks()).has(id));
  t.deepEqual(processesMentioning(id), [], 'no agent or container process is left');
});

test('containerd\'s runc shim with runbox as its binary: a detached task gets an exec (with its output), is killed and deleted', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const id = containerd.id('runc-path');
  const started = await containerd.run(id, ['sleep', '1000'], ['-d', '--runc-binary', RUNBOX], RUNC_RUNTIME);
  t.is(started.code, 0, started.stderr);
  await containerd.waitForStatus(id, 'RUNNING');
  // The runc shim runs `runbox exec --detach` with its own pipes as the process's stdio, and connects them to
  // ctr's FIFOs only once that has returned. What a process writes before it is sure of a reader can be lost,
  // with runc as with runbox (seen with both under load): ctr opens its ends of the FIFOs in goroutines, and once
  // the exit is in, it cancels any open that has not returned yet (containerd 1.6). So the process reads its stdin
  // first, which the shim feeds once it has connected the output FIFOs, and gives ctr's goroutines a second.
  const exec = await containerd.ctr(
    ['task', 'exec', '--fifo-dir', containerd.fifoDir, '--exec-id', 'e1', id, 'sh', '-c', 'read line; sleep 1; echo "out $line"; echo err >&2; exit 3'],
    { input: 'in\n' },
  );
  t.is(exec.code, 3, exec.stderr);
  t.is(exec.stdout, 'out in\n');
  t.regex(exec.stderr, /err/);
  const killed = await containerd.ctr(['task', 'kill', '-s', 'KILL', id]);
  t.is(killed.code, 0, killed.stderr);
  await containerd.waitForStatus(id, 'STOPPED');
  const deleted = await containerd.ctr(['task', 'delete', id]);
  t.regex(deleted.stdout + deleted.stderr, /137/);
  t.false((await containerd.tasks()).has(id));
  t.deepEqual(processesMentioning(id), []);
});
