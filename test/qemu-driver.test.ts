// The qemu driver end to end, through the CLI, with real QEMU microVMs under TCG (the accel this machine can run).
// Each boot costs about a second of a core: the tests share VMs between assertions where they can.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';
import { join } from 'node:path';
import { guestAssets } from '../src/drivers/qemu/guest-assets.js';
import { processStartTime } from '../src/host/host-process.js';
import type { Spec } from '../src/oci/spec.js';
import { Runtime } from '../src/runtime/runtime.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { RUNBOX, TestEnv, errorMessage, processesMentioning, runCommand } from './helpers/runbox.js';
import { hangingInitrd } from './helpers/qemu.js';

function qemuEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, RUNBOX_DRIVER: 'qemu', RUNBOX_QEMU_ACCEL: 'tcg', ...extra };
}

/** The annotations that pick the driver and its acceleration for one container. */
function inVm(spec: Spec): void {
  spec.annotations = { ...spec.annotations, 'io.runbox.driver': 'qemu', 'io.runbox.qemu.accel': 'tcg' };
}

/** Nothing of a container is left on the host: no QEMU, no state directory (sockets, image, files). */
function assertNothingLeft(t: import('ava').ExecutionContext, env: TestEnv, id: string): void {
  t.deepEqual(processesMentioning(join(env.root, id)), [], 'no QEMU (or anything else) runs for the container');
  t.false(existsSync(join(env.root, id)), 'the container state directory is gone');
}

test('run: the process runs under the guest kernel, with hostname and env from config.json, and its exit code', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.hostname = 'in-a-vm';
    spec.process!.env!.push('GREETING=hello from the guest');
    spec.process!.args = ['sh', '-c', 'uname -r; hostname; echo "$GREETING"; echo written > /etc/vm-was-here && cat /etc/vm-was-here; nproc; grep MemTotal /proc/meminfo; exit 3'];
    // Two vCPUs (a quota of two periods) and 160 MiB for the container.
    spec.linux!.resources = { cpu: { quota: 150_000, period: 100_000 }, memory: { limit: 160 * 2 ** 20 } };
  });
  const id = env.id();
  const result = await env.run(['run', '--bundle', bundle, id], { env: qemuEnv() });
  t.is(result.code, 3, result.stderr);
  const kernel = guestAssets().kernelVersion;
  t.not(kernel, release(), 'the guest kernel is not the host kernel');
  const [uname, hostname, greeting, written, nproc, memTotal] = result.stdout.split('\n');
  t.deepEqual([uname, hostname, greeting, written], [kernel, 'in-a-vm', 'hello from the guest', 'written']);
  t.is(nproc, String(Math.min(2, availableParallelism())));
  const memKib = Number(/MemTotal:\s+(\d+) kB/.exec(memTotal ?? '')?.[1]);
  t.true(memKib > 160 * 1024 && memKib < (160 + 48) * 1024, `the guest has room for the container's 160 MiB: ${memTotal}`);
  t.false(existsSync(join(bundle, 'rootfs', 'etc', 'vm-was-here')), 'the write stayed in the VM');
  assertNothingLeft(t, env, id);
});

test('create: the container stdout and stderr reach the stdio create was given, after the CLI has exited', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'echo to-stdout; echo to-stderr >&2'];
    inVm(spec);
  });
  const id = env.id();
  const [out, err] = [join(env.dir, 'out'), join(env.dir, 'err')];
  const [outFd, errFd] = [openSync(out, 'w'), openSync(err, 'w')];
  const created = spawnSync(RUNBOX, ['--root', env.root, 'create', '--bundle', bundle, id], { stdio: ['ignore', outFd, errFd] });
  closeSync(outFd);
  closeSync(errFd);
  t.is(created.status, 0, readFileSync(err, 'utf8'));
  t.is((await env.run(['start', id])).code, 0);
  await env.waitForStatus(id, 'stopped', 30_000);
  t.is(readFileSync(out, 'utf8'), 'to-stdout\n');
  t.is(readFileSync(err, 'utf8'), 'to-stderr\n');
  t.is((await env.run(['delete', id])).code, 0);
  assertNothingLeft(t, env, id);
});

test('two VMs at once: exec into a running one, TERM reaches the process, KILL ends the VM', async (t) => {
  const env = new TestEnv(t);
  const trapper = ['sh', '-c', 'trap "exit 7" TERM; echo ready > /tmp/ready; while :; do sleep 0.1; done'];
  const [termed, killed] = await Promise.all([
    env.running(trapper, inVm),
    env.running(['sleep', '1000'], inVm),
  ]);
  const termedState = await env.state(termed.id);
  const killedState = await env.state(killed.id);
  t.is(termedState.status, 'running');
  t.not(termedState.pid, killedState.pid, 'each container has a VM of its own');

  const exec = await env.run(['exec', termed.id, '--', 'sh', '-c', 'cat /tmp/ready; uname -r']);
  t.is(exec.code, 0, exec.stderr);
  t.is(exec.stdout, `ready\n${guestAssets().kernelVersion}\n`);
  const failing = await env.run(['exec', termed.id, '--', 'sh', '-c', 'exit 4']);
  t.is(failing.code, 4, failing.stderr);
  // More clients at once than the VM has agent ports: the extra ones wait for a port, none is lost.
  const many = await Promise.all(Array.from({ length: 6 }, (_, i) => env.run(['exec', termed.id, '--', 'echo', `client ${i}`])));
  t.deepEqual(many.map((result) => result.stdout), Array.from({ length: 6 }, (_, i) => `client ${i}\n`));

  t.is((await env.run(['kill', termed.id, 'TERM'])).code, 0);
  await env.waitForStatus(termed.id, 'stopped', 30_000);
  const exit = await new Runtime({ root: env.root }).wait(termed.id);
  t.is(exit.exitStatus, 7, 'the trap ran: TERM reached the process in the guest');

  const vm = killedState.pid as number;
  t.truthy(processStartTime(vm), 'the container pid is its VM, a live host process');
  t.is((await env.run(['kill', killed.id, 'KILL'])).code, 0);
  await env.waitForStatus(killed.id, 'stopped', 30_000);
  t.is(processStartTime(vm), undefined, 'the VM is gone');

  for (const { id } of [termed, killed]) {
    const deleted = await env.run(['delete', id]);
    t.is(deleted.code, 0, deleted.stderr);
    assertNothingLeft(t, env, id);
  }
});

test('a terminal container in a VM: the guest pty is relayed with its window size and exit status', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.terminal = true;
    spec.process!.args = ['sh', '-c', '[ -t 0 ] && echo "size=$(stty size)"; uname -r; exit 4'];
    inVm(spec);
  });
  const id = env.id();
  // script(1) gives the CLI a terminal of its own, sized as a user's would be.
  const result = await runCommand('script', ['-qec', `stty cols 100 rows 30; ${RUNBOX} --root ${env.root} run --bundle ${bundle} ${id}`, '/dev/null']);
  t.is(result.code, 4, result.stdout);
  t.regex(result.stdout, /size=30 100/);
  t.true(result.stdout.includes(guestAssets().kernelVersion));
  assertNothingLeft(t, env, id);
});

test('a running VM container: its sockets are 0600, QEMU under TCG has no huge pages, and delete --force ends its VM', async (t) => {
  const env = new TestEnv(t);
  const { id } = await env.running(['sleep', '1000'], inVm);
  const vm = (await env.state(id)).pid as number;
  t.truthy(processStartTime(vm));
  // TCG's code buffer would otherwise take 2 MiB of memory for each stretch of translated code it touched.
  t.regex(readFileSync(`/proc/${vm}/status`, 'utf8'), /^THP_enabled:\s+0$/m, 'QEMU may not have transparent huge pages');
  t.regex(readFileSync(`/proc/${vm}/smaps_rollup`, 'utf8'), /^AnonHugePages:\s+0 kB$/m, 'and has none');
  const sockets = readdirSync(join(env.root, id)).filter((name) => name.endsWith('.sock'));
  t.deepEqual(sockets.sort(), ['agent-0.sock', 'agent-1.sock', 'agent-2.sock', 'agent-3.sock', 'qmp.sock']);
  for (const name of sockets) t.is(statSync(join(env.root, id, name)).mode & 0o777, 0o600, `${name} is 0600`);
  const deleted = await env.run(['delete', '--force', id]);
  t.is(deleted.code, 0, deleted.stderr);
  t.is(processStartTime(vm), undefined, 'QEMU is gone');
  assertNothingLeft(t, env, id);
});

/** A `create` with the qemu driver and these settings, which must fail; its error message. */
async function failedCreate(t: import('ava').ExecutionContext, env: TestEnv, settings: NodeJS.ProcessEnv, args = ['true']) {
  const bundle = env.bundle((spec) => {
    spec.process!.args = args;
  });
  const id = env.id();
  const result = await env.run(['create', '--bundle', bundle, id], { env: qemuEnv(settings) });
  t.is(result.code, 1);
  t.is((await env.run(['list', '-q'])).stdout, '');
  assertNothingLeft(t, env, id);
  return { id, message: errorMessage(result.stderr) };
}

test('a kernel that cannot be loaded: a clear error, and nothing left behind', async (t) => {
  const env = new TestEnv(t);
  const { id, message } = await failedCreate(t, env, { RUNBOX_QEMU_KERNEL: join(env.dir, 'no-such-vmlinux') });
  t.regex(message, new RegExp(`^container ${id}: the microVM \\(accel tcg\\) failed to start: .*no-such-vmlinux`));
});

test('a rootfs image that cannot be built (it is built while the VM boots): a clear error, and nothing left behind', async (t) => {
  const env = new TestEnv(t);
  // Node and QEMU on the PATH, no mkfs.erofs
  const bin = join(env.dir, 'bin');
  mkdirSync(bin);
  for (const tool of ['node', 'qemu-system-x86_64']) {
    symlinkSync(spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(), join(bin, tool));
  }
  const { id, message } = await failedCreate(t, env, { PATH: bin });
  t.regex(message, new RegExp(`^container ${id}: cannot build a erofs image of .*rootfs: .*mkfs\\.erofs ENOENT`));
});

test('a guest whose init never reports ready: torn down at the boot deadline with a clear error', async (t) => {
  const env = new TestEnv(t);
  const initrd = hangingInitrd(env.dir);
  const { id, message } = await failedCreate(t, env, { RUNBOX_QEMU_INITRD: initrd, RUNBOX_QEMU_BOOT_TIMEOUT: '4' });
  t.regex(message, new RegExp(`^container ${id}: the guest did not report ready within 4 s \\(accel tcg, VM running\\)`));
  t.deepEqual(processesMentioning(initrd), [], 'no QEMU is left running the guest');
});

test('a CLI killed while its VM boots leaves no QEMU behind', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['true'];
    inVm(spec);
  });
  const id = env.id();
  const dir = join(env.root, id);
  const errors = join(env.dir, `${id}.stderr`);
  const cli = spawn(RUNBOX, ['--root', env.root, 'create', '--bundle', bundle, id], { stdio: ['ignore', 'ignore', openSync(errors, 'w')] });
  let exited = false;
  cli.on('exit', () => (exited = true));
  // On a loaded machine QEMU can take many seconds to appear: wait for it, or for the CLI to give up.
  for (let i = 0; i < 3000 && !exited && processesMentioning(dir).length === 0; i++) await sleep(20);
  t.not(processesMentioning(dir).length, 0, `QEMU started (create: ${exited ? readFileSync(errors, 'utf8') : 'still running'})`);
  cli.kill('SIGKILL');
  // Killed before its VM was recorded, the guest powers itself off; after, delete finds and ends it.
  const deleted = await env.run(['delete', '--force', id]);
  t.is(deleted.code, 0, deleted.stderr);
  for (let i = 0; i < 300 && processesMentioning(dir).length > 0; i++) await sleep(100);
  assertNothingLeft(t, env, id);
});

test('an unknown acceleration is refused before anything starts', async (t) => {
  const env = new TestEnv(t);
  const { id, message } = await failedCreate(t, env, { RUNBOX_QEMU_ACCEL: 'warp' });
  t.is(message, `container ${id}: invalid qemu acceleration "warp" (expected one of kvm, tcg, auto)`);
});

test('a program missing from the image fails create inside the VM, and nothing is left behind', async (t) => {
  const env = new TestEnv(t);
  const { id, message } = await failedCreate(t, env, {}, ['/bin/no-such-program']);
  t.is(message, `container ${id}: exec: "/bin/no-such-program": stat /bin/no-such-program: no such file or directory`);
});

test('linux.resources are applied in the guest\'s cgroups: pids.limit stops a fork bomb, the memory limit is the container\'s; unified is refused', async (t) => {
  const env = new TestEnv(t);
  const running = env.id();
  const bundle = env.bundle((spec) => {
    inVm(spec);
    spec.linux!.resources = { pids: { limit: 8 }, memory: { limit: 40 * 2 ** 20 }, cpu: { shares: 512, cpus: '1' } };
    spec.process!.args = ['sh', '-c', [
      // The guest's hierarchies, bound at /sys/fs/cgroup (the container's own cgroup namespace shows it as /).
      `cat /sys/fs/cgroup/memory/runbox/${running}/memory.limit_in_bytes`,
      'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done 2>&1 | sort -u',
    ].join('; ')];
  });
  const result = await env.run(['run', '--bundle', bundle, running]);
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, `${40 * 2 ** 20}\nsh: can't fork: Resource temporarily unavailable\n`);
  const refused = env.bundle((spec) => {
    inVm(spec);
    spec.linux!.resources = { unified: { 'memory.high': '1000000' } };
  });
  const id = env.id();
  const failed = await env.run(['create', '--bundle', refused, id]);
  t.is(failed.code, 1);
  t.regex(errorMessage(failed.stderr), /linux\.resources\.unified needs cgroup v2/);
  assertNothingLeft(t, env, id);
});
