// containerd-shim-runbox-v2 driven by a real, private containerd (test/helpers/containerd.ts) through ctr.
import { appendFileSync, existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { IMAGE, pidsWith, PrivateContainerd, RUNBOX_RUNTIME } from './helpers/containerd.js';
import { mountsUnder, runCommand } from './helpers/runbox.js';


test('ctr run prints the container\'s output and passes its exit status on', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const hello = await containerd.run(containerd.id(), ['echo', 'hello'], ['--rm']);
  t.is(hello.code, 0, hello.stderr);
  t.is(hello.stdout, 'hello\n');
  const seven = await containerd.run(containerd.id(), ['sh', '-c', 'echo to-stderr >&2; exit 7'], ['--rm']);
  t.is(seven.code, 7, seven.stderr);
  t.regex(seven.stderr, /to-stderr/);
  t.deepEqual(containerd.shimPids(), [], 'the shims exit once their task is deleted');
  t.deepEqual(mountsUnder(containerd.dir).filter((line) => line.includes('/rootfs ')), []);
});

test('run -d, exec, ps, pause, resume, kill and delete, with the events in order', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const events = await containerd.watchEvents(t);
  const id = containerd.id();
  const started = await containerd.run(id, ['sleep', '1000'], ['-d']);
  t.is(started.code, 0, started.stderr);
  t.is((await containerd.tasks()).get(id)?.status, 'RUNNING');

  const exec = await containerd.ctr(['task', 'exec', '--fifo-dir', containerd.fifoDir, '--exec-id', 'e1', id, 'sh', '-c', 'echo in-exec; exit 3']);
  t.is(exec.code, 3, exec.stderr);
  t.is(exec.stdout, 'in-exec\n');

  const ps = await containerd.ctr(['task', 'ps', id]);
  t.regex(ps.stdout, new RegExp(`^${(await containerd.tasks()).get(id)!.pid}\\s`, 'm'));

  const metrics = await containerd.ctr(['task', 'metrics', id]);
  t.is(metrics.code, 0, metrics.stderr);
  t.regex(metrics.stdout, /pids\.current\s+1\b/);
  t.regex(metrics.stdout, /memory\.usage_in_bytes\s+[1-9]\d*/);

  t.is((await containerd.ctr(['task', 'pause', id])).code, 0);
  t.is((await containerd.tasks()).get(id)?.status, 'PAUSED');
  t.is((await containerd.ctr(['task', 'resume', id])).code, 0);
  t.is((await containerd.tasks()).get(id)?.status, 'RUNNING');

  t.is((await containerd.ctr(['task', 'kill', '-s', 'KILL', id])).code, 0);
  await containerd.waitForStatus(id, 'STOPPED');
  const deleted = await containerd.ctr(['task', 'delete', id]);
  t.is(deleted.code, 0, deleted.stderr);
  t.false((await containerd.tasks()).has(id));
  await sleep(500);
  t.deepEqual(events.topics(id), [
    '/tasks/create', '/tasks/start', '/tasks/exec-added', '/tasks/exec-started', '/tasks/exit',
    '/tasks/paused', '/tasks/resumed', '/tasks/exit', '/tasks/delete',
  ], events.text());
});

test('ctr run -t gives the container a terminal', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const ctr = `ctr -a ${containerd.address} run -t --rm --fifo-dir ${containerd.fifoDir} --runtime ${RUNBOX_RUNTIME} ${IMAGE} ${containerd.id()}`;
  // script(1) gives ctr a terminal of its own, as a user's shell would.
  const result = await runCommand('script', ['-qec', `${ctr} sh -c '[ -t 0 ] && [ -t 1 ] && tty; exit 4'`, '/dev/null']);
  t.is(result.code, 4, result.stdout);
  t.regex(result.stdout, /\/dev\/pts\/\d+/);
});

test('ctr task exec -t gives the exec a terminal the size of ctr\'s (ResizePty)', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const id = containerd.id();
  t.is((await containerd.run(id, ['sleep', '1000'], ['-d'])).code, 0);
  // ctr sends the size (ResizePty) only after Start, as it does with runc: the exec waits until a size is there.
  const script = 'tty; for i in $(seq 100); do s=$(stty size 2>/dev/null); [ -n "$s" ] && [ "$s" != "0 0" ] && break; sleep 0.05; done; echo "size=$s"';
  const exec = `ctr -a ${containerd.address} task exec -t --fifo-dir ${containerd.fifoDir} --exec-id size ${id} sh -c '${script}'`;
  // The outer terminal (script(1)'s) is given a size, which ctr reads and passes on.
  const result = await runCommand('script', ['-qec', `stty cols 123 rows 45; ${exec}`, '/dev/null']);
  t.is(result.code, 0, result.stdout);
  t.regex(result.stdout, /\/dev\/pts\/\d+/);
  t.regex(result.stdout, /size=45 123\r?$/m);
});

test('a runtime config file (--runtime-config-path) that is wrong fails the run with an error naming it', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const config = join(containerd.dir, 'runbox-runtime.json');
  writeFileSync(config, JSON.stringify({ driver: 'vm' }));
  const id = containerd.id();
  const result = await containerd.run(id, ['true'], ['--rm', '--runtime-config-path', config]);
  t.not(result.code, 0);
  t.true(result.stderr.includes(`runtime config ${config}: driver must be one of emulated, qemu, enclave, auto`), result.stderr);
  writeFileSync(config, JSON.stringify({ driver: 'emulated', annotations: { 'io.runbox.example': 'default' } }));
  const good = await containerd.run(containerd.id(), ['echo', 'configured'], ['--rm', '--runtime-config-path', config]);
  t.is(good.code, 0, good.stderr);
  t.is(good.stdout, 'configured\n');
});

test('10 containers started in parallel all run and report their own status', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => containerd.run(containerd.id(), ['sh', '-c', `echo n=${i}; exit ${i}`], ['--rm'])));
  results.forEach((result, i) => {
    t.is(result.code, i, result.stderr);
    t.is(result.stdout, `n=${i}\n`);
  });
});

test('containers with the same sandbox-id annotation are served by one shim process', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const [a, b] = [containerd.id('a'), containerd.id('b')];
  const group = ['--annotation', `io.kubernetes.cri.sandbox-id=${containerd.id('pod')}`];
  t.is((await containerd.run(a, ['sleep', '1000'], ['-d', ...group])).code, 0);
  t.is((await containerd.run(b, ['sleep', '1000'], ['-d', ...group])).code, 0);
  const tasks = await containerd.tasks();
  t.is(tasks.get(a)?.status, 'RUNNING');
  t.is(tasks.get(b)?.status, 'RUNNING');
  t.is(containerd.shimPids().length, 1);
  for (const id of [a, b]) {
    await containerd.ctr(['task', 'kill', '-s', 'KILL', id]);
    await containerd.waitForStatus(id, 'STOPPED');
    t.is((await containerd.ctr(['task', 'delete', id])).code, 0);
    if (id === a) t.is(containerd.shimPids().length, 1, 'the shim stays while the pod has a task');
  }
  for (let i = 0; i < 50 && containerd.shimPids().length; i++) await sleep(100);
  t.deepEqual(containerd.shimPids(), []);
});

test('in a pod, a container whose program is missing fails its create, leaves its neighbour running, and its id can be used again', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const [a, b] = [containerd.id('a'), containerd.id('b')];
  const group = ['--annotation', `io.kubernetes.cri.sandbox-id=${containerd.id('pod')}`];
  t.is((await containerd.run(a, ['sleep', '1000'], ['-d', ...group])).code, 0);
  const failed = await containerd.run(b, ['/bin/nope'], ['-d', ...group]);
  t.not(failed.code, 0);
  t.regex(failed.stderr, /exec: "\/bin\/nope": stat \/bin\/nope: no such file or directory/);
  t.is((await containerd.tasks()).get(a)?.status, 'RUNNING');

  await containerd.ctr(['container', 'rm', b]);
  const again = await containerd.run(b, ['sleep', '1000'], ['-d', ...group]);
  t.is(again.code, 0, again.stderr);
  t.is((await containerd.tasks()).get(b)?.status, 'RUNNING');
  t.is(containerd.shimPids().length, 1);
  for (const id of [a, b]) {
    await containerd.ctr(['task', 'kill', '-s', 'KILL', id]);
    await containerd.waitForStatus(id, 'STOPPED');
    t.is((await containerd.ctr(['task', 'delete', id])).code, 0);
  }
});

test('a task survives a containerd restart: listed with its status, then killed, waited for and deleted', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const id = containerd.id();
  t.is((await containerd.run(id, ['sleep', '1000'], ['-d'])).code, 0);
  await containerd.restartDaemon();
  t.is((await containerd.tasks()).get(id)?.status, 'RUNNING');
  // ctr 1.6 has no `task wait`: attach waits for the task (Task.Wait) and exits with its status.
  const attach = containerd.ctr(['task', 'attach', id]);
  await sleep(500);
  t.is((await containerd.ctr(['task', 'kill', '-s', 'KILL', id])).code, 0);
  t.is((await attach).code, 137);
  // containerd deletes a task it restored once it exits; otherwise ctr does.
  if ((await containerd.tasks()).has(id)) t.is((await containerd.ctr(['task', 'delete', id])).code, 0);
  for (let i = 0; i < 50 && containerd.shimPids().length; i++) await sleep(100);
  t.false((await containerd.tasks()).has(id));
  t.deepEqual(containerd.shimPids(), []);
});

test('an exit while containerd is down is queued by the shim and delivered, in order, once containerd is back', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const id = containerd.id();
  t.is((await containerd.run(id, ['sleep', '1000'], ['-d'])).code, 0);
  const pid = (await containerd.tasks()).get(id)!.pid;
  await containerd.stopDaemon();
  process.kill(pid, 'SIGKILL');
  // containerd comes back on another event socket, so that the shim (which keeps the address it was started with)
  // cannot deliver before a subscriber is listening; the old address is then pointed at the new socket.
  const eventSocket = join(containerd.dir, 'events-moved.ttrpc');
  appendFileSync(join(containerd.dir, 'config.toml'), `[ttrpc]\n  address = "${eventSocket}"\n`);
  await containerd.startDaemon();
  const events = await containerd.watchEvents(t);
  await sleep(200);
  t.deepEqual(events.topics(id), [], 'nothing could be delivered yet');
  const oldSocket = `${containerd.address}.ttrpc`;
  rmSync(oldSocket, { force: true });
  symlinkSync(eventSocket, oldSocket);
  for (let i = 0; i < 100 && !events.topics(id).includes('/tasks/exit'); i++) await sleep(100);
  t.is(events.topics(id)[0], '/tasks/exit', events.text());
  t.regex(events.text(), new RegExp(`/tasks/exit .*"container_id":"${id}".*"exit_status":137`));
});

test('a shim killed with SIGKILL leaves no container process and no mount behind', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const id = containerd.id();
  t.is((await containerd.run(id, ['sleep', '4242'], ['-d'])).code, 0);
  const pid = (await containerd.tasks()).get(id)!.pid;
  const [shim] = containerd.shimPids();
  const socket = readFileSync(`${containerd.dir}/state/io.containerd.runtime.v2.task/default/${id}/address`, 'utf8').replace('unix://', '');
  process.kill(shim!, 'SIGKILL');
  // containerd sees its shim gone, runs `containerd-shim-runbox-v2 delete` and forgets the task.
  for (let i = 0; i < 100 && (await containerd.tasks()).has(id); i++) await sleep(100);
  t.false((await containerd.tasks()).has(id));
  for (let i = 0; i < 50 && pidsWith('sleep 4242').length; i++) await sleep(100);
  t.deepEqual(pidsWith('sleep 4242'), []);
  t.throws(() => readFileSync(`/proc/${pid}/stat`));
  t.false(existsSync(socket), `the dead shim's socket is removed; ${containerd.complaints([id])}`);
  t.deepEqual(mountsUnder(containerd.dir).filter((line) => line.includes(`/${id}/rootfs`)), [], containerd.complaints([id]));
});
