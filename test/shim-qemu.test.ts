// containerd → containerd-shim-runbox-v2 → the qemu driver: the container runs under the guest's kernel.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { guestAssets } from '../src/drivers/qemu/guest-assets.js';
import { DRIVER_ANNOTATION } from '../src/drivers/drivers.js';
import { PrivateContainerd } from './helpers/containerd.js';
import { clonePausingQemu, isStopped, killAll, procFile, qemuCalls, qemuWithKvmThat } from './helpers/qemu.js';
import { processesMentioning, type Result } from './helpers/runbox.js';

test('ctr run with the qemu driver selected by annotation prints the guest kernel\'s uname -r', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const result = await containerd.run(containerd.id('vm'), ['sh', '-c', 'uname -r; exit 4'], ['--rm', '--annotation', `${DRIVER_ANNOTATION}=qemu`]);
  t.is(result.code, 4, result.stderr);
  t.is(result.stdout, `${guestAssets().kernelVersion}\n`);
  t.not(guestAssets().kernelVersion, release());
  // The shim exits by itself once its last task is deleted, a moment after ctr has its answer.
  for (let i = 0; i < 100 && containerd.shimPids().length; i++) await sleep(100);
  t.deepEqual(containerd.shimPids(), []);
});

test('ctr run with the qemu driver chosen by the runtime options\' config file (--runtime-config-path)', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const config = join(containerd.dir, 'runbox-runtime.json');
  writeFileSync(config, JSON.stringify({ driver: 'qemu' }));
  const result = await containerd.run(containerd.id('vm'), ['uname', '-r'], ['--rm', '--runtime-config-path', config]);
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, `${guestAssets().kernelVersion}\n`);
});

test('a shim killed while its microVM clone waits for the restore: containerd\'s shim delete ends that QEMU', async (t) => {
  // A QEMU that stops its caller (the shim) when it is a clone, before the shim can restore it; templates of the
  // test's own.
  const dir = mkdtempSync(join(tmpdir(), 'runbox-shim-qemu-'));
  t.teardown(() => {
    // Should the test fail before the shim is killed, its clone would wait for ever: it goes with the test.
    killAll(processesMentioning(`${dir}/`));
    rmSync(dir, { recursive: true, force: true });
  });
  const templates = join(dir, 'templates');
  const containerd = await PrivateContainerd.start(t, { RUNBOX_QEMU: clonePausingQemu(dir), RUNBOX_QEMU_TEMPLATE_DIR: templates, RUNBOX_QEMU_ACCEL: 'tcg' });
  const id = containerd.id('vm');
  const run = containerd.run(id, ['true'], ['--annotation', `${DRIVER_ANNOTATION}=qemu`]);
  const clones = () => processesMentioning(`${templates}/`).filter((pid) => procFile(pid, 'cmdline').includes('-incoming'));
  let shim: number | undefined;
  for (let i = 0; i < 3000 && !(clones().length > 0 && (shim = containerd.shimPids()[0]) && isStopped(shim)); i++) await sleep(20);
  t.true(shim !== undefined && isStopped(shim), 'the shim was stopped by its clone QEMU');
  process.kill(shim!, 'SIGKILL');
  const result = await run;
  t.not(result.code, 0, 'the task was never created');
  // containerd runs the shim's `delete` once it has seen the shim gone, on its own schedule: slow under load.
  for (let i = 0; i < 300 && clones().length > 0; i++) await sleep(100);
  t.deepEqual(clones(), [], 'no clone QEMU is left waiting');
});

test('the first microVMs through containerd on a host whose KVM never runs the guest: two at once both run on TCG, after one probe', async (t) => {
  // A QEMU whose guest never runs under -accel kvm, a KVM device that opens and a verdict of the test's own: a host
  // never probed, whatever this machine's KVM does. No acceleration pinned.
  const dir = mkdtempSync(join(tmpdir(), 'runbox-shim-kvm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'kvm'), '');
  const verdict = join(dir, 'kvm-verdict.json');
  const containerd = await PrivateContainerd.start(t, {
    RUNBOX_QEMU: qemuWithKvmThat('hangs', dir), RUNBOX_QEMU_KVM_DEVICE: join(dir, 'kvm'), RUNBOX_QEMU_KVM_VERDICT: verdict,
    RUNBOX_QEMU_TEMPLATE_DIR: join(dir, 'templates'), RUNBOX_QEMU_ACCEL: undefined,
  });
  const vm = (): Promise<Result> => containerd.run(containerd.id('vm'), ['uname', '-r'], ['--rm', '--annotation', `${DRIVER_ANNOTATION}=qemu`]);
  const first = await Promise.all([vm(), vm()]);
  for (const result of first) t.deepEqual([result.code, result.stdout], [0, `${guestAssets().kernelVersion}\n`], result.stderr);
  const calls = qemuCalls(dir);
  t.is(calls.filter((call) => call.accel === 'kvm').length, 1, 'KVM was tried once');
  t.false((JSON.parse(readFileSync(verdict, 'utf8')) as { works: boolean }).works);
  const said = containerd.log().split('\n').filter((line) => line.includes('KVM was tried and not used'));
  t.is(said.length, 1, 'the shim that tried KVM says so in containerd\'s log');
  t.regex(said[0]!, /did not report ready within 5 s \(accel kvm, VM prelaunch\)/);

  const next = await vm();
  t.deepEqual([next.code, next.stdout], [0, `${guestAssets().kernelVersion}\n`], next.stderr);
  const nextCalls = qemuCalls(dir).slice(calls.length);
  t.true(nextCalls.length > 0);
  t.deepEqual(nextCalls.map((call) => call.accel), nextCalls.map(() => 'tcg'), 'the next VM went straight to TCG');
});

test('a shim killed while containerd is down takes its microVM with it', async (t) => {
  const containerd = await PrivateContainerd.start(t, { RUNBOX_QEMU_ACCEL: 'tcg' });
  const id = containerd.id('vm');
  const started = await containerd.run(id, ['sleep', '1000'], ['-d', '--annotation', `${DRIVER_ANNOTATION}=qemu`]);
  t.is(started.code, 0, started.stderr);
  const [shim] = containerd.shimPids();
  const vms = () => processesMentioning('/run/runbox-shim/').filter((pid) => procFile(pid, 'comm').startsWith('qemu-system') && procFile(pid, 'stat').split(') ')[1]?.split(' ')[1] === String(shim));
  t.is(vms().length, 1, 'the shim runs the container\'s VM');
  // With containerd stopped, nobody runs the shim's delete: only the shim's own end can take its VM.
  await containerd.stopDaemon();
  const vm = vms()[0]!;
  process.kill(shim!, 'SIGKILL');
  for (let i = 0; i < 100 && procFile(vm, 'stat') !== '' && !procFile(vm, 'stat').includes(') Z'); i++) await sleep(50);
  t.true(procFile(vm, 'stat') === '' || procFile(vm, 'stat').includes(') Z'), 'QEMU ended with its shim');
  await containerd.startDaemon();
});
