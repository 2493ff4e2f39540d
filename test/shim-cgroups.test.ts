// Resource limits through containerd: ctr run's --memory-limit applied by the shim's sandbox, the OOM kill told
// to containerd as /tasks/oom before /tasks/exit, and containerd's Tasks.Update reaching a running task.
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { cgroupsLeft, memoryLimit } from './helpers/cgroups.js';
import { PrivateContainerd } from './helpers/containerd.js';
import { updateTask } from './helpers/containerd-tasks.js';
import { RUNBOX } from './helpers/runbox.js';

const MiB = 1024 * 1024;
const RUNC_RUNTIME = 'io.containerd.runc.v2';

test('ctr run --memory-limit: a memory hog exits 137 and containerd gets /tasks/oom before /tasks/exit', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const events = await containerd.watchEvents(t);
  const id = containerd.id('oom');
  const hog = await containerd.run(id, ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], ['--rm', '--memory-limit', String(16 * MiB)]);
  t.is(hog.code, 137, hog.stderr);
  for (let i = 0; i < 50 && !events.topics(id).includes('/tasks/delete'); i++) await sleep(100);
  t.deepEqual(events.topics(id), ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete'], events.text());
  t.deepEqual(cgroupsLeft(`/default/${id}`), [], 'the task\'s cgroups are gone with it');

  const fits = await containerd.run(containerd.id('fits'), ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=1M', 'count=1'], ['--rm', '--memory-limit', String(16 * MiB)]);
  t.is(fits.code, 0, fits.stderr);
});

test('containerd\'s Tasks.Update changes the memory limit of a running task; bad resources are refused', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const id = containerd.id('upd');
  const started = await containerd.run(id, ['sleep', '1000'], ['-d', '--memory-limit', String(64 * MiB)]);
  t.is(started.code, 0, started.stderr);
  const pid = (await containerd.tasks()).get(id)!.pid;
  t.is(memoryLimit(pid), String(64 * MiB), 'ctr run --memory-limit reached the cgroup');

  await updateTask(containerd.address, 'default', id, { memory: { limit: 96 * MiB }, pids: { limit: 50 } });
  t.is(memoryLimit(pid), String(96 * MiB));

  const bad = await updateTask(containerd.address, 'default', id, { memory: { limit: 'lots' } }).catch((error: Error) => error);
  t.true(bad instanceof Error);
  t.regex((bad as Error).message, /memory\.limit must be an integer/);
  t.is(memoryLimit(pid), String(96 * MiB));

  t.is((await containerd.ctr(['task', 'kill', '-s', 'KILL', id])).code, 0);
  await containerd.waitForStatus(id, 'STOPPED');
  t.is((await containerd.ctr(['task', 'delete', id])).code, 0);
  t.deepEqual(cgroupsLeft(`/default/${id}`), []);
});

test('containerd\'s runc shim with runbox as its binary: the limits apply, its OOM watch sees the kill, Update reaches runbox update', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const events = await containerd.watchEvents(t);
  const runc = ['--runc-binary', RUNBOX];
  const hogId = containerd.id('runc-oom');
  // containerd's runc shim adds the container to its OOM watch only once `start` has returned (so with runc too): a
  // hog that fills its memory at once can be killed before the watch exists. This one waits a moment first.
  const hogArgs = ['sh', '-c', 'sleep 0.5; exec dd if=/dev/zero of=/dev/null bs=64M count=1'];
  const hog = await containerd.run(hogId, hogArgs, ['--rm', '--memory-limit', String(16 * MiB), ...runc], RUNC_RUNTIME);
  t.is(hog.code, 137, hog.stderr);
  for (let i = 0; i < 50 && !events.topics(hogId).includes('/tasks/delete'); i++) await sleep(100);
  const topics = events.topics(hogId);
  // containerd's runc shim publishes the OOM from a watch of its own: it can arrive after the exit it preceded.
  const oomAt = events.at(hogId, '/tasks/oom');
  t.true(topics.includes('/tasks/oom') && oomAt !== undefined && oomAt <= events.at(hogId, '/tasks/exit')!, events.text());

  const id = containerd.id('runc-upd');
  const started = await containerd.run(id, ['sleep', '1000'], ['-d', '--memory-limit', String(64 * MiB), ...runc], RUNC_RUNTIME);
  t.is(started.code, 0, started.stderr);
  const pid = (await containerd.tasks()).get(id)!.pid;
  t.is(memoryLimit(pid), String(64 * MiB));
  await updateTask(containerd.address, 'default', id, { memory: { limit: 80 * MiB } });
  t.is(memoryLimit(pid), String(80 * MiB), 'the runc shim ran runbox update --resources -');
  t.is((await containerd.ctr(['task', 'kill', '-s', 'KILL', id])).code, 0);
  await containerd.waitForStatus(id, 'STOPPED');
  t.is((await containerd.ctr(['task', 'delete', id])).code, 0);
  t.deepEqual(cgroupsLeft(`/default/${id}`), []);
  t.deepEqual(cgroupsLeft(`/default/${hogId}`), []);
});
