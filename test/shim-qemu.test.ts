// containerd → containerd-shim-runbox-v2 → the qemu driver: the container runs under the guest's kernel.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { guestAssets } from '../src/hypervisor/guest-assets.js';
import { DRIVER_ANNOTATION } from '../src/hypervisor/drivers.js';
import { PrivateContainerd } from './helpers/containerd.js';
import { clonePausingQemu, isStopped, killAll, procFile } from './helpers/qemu.js';
import { processesMentioning } from './helpers/runbox.js';

test('ctr run with the qemu driver selected by annotation prints the guest kernel\'s uname -r', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const result = await containerd.run(containerd.id('vm'), ['sh', '-c', 'uname -r; exit 4'], ['--rm', '--annotation', `${DRIVER_ANNOTATION}=qemu`]);
  t.is(result.code, 4, result.stderr);
  t.is(result.stdout, `${guestAssets().kernelVersion}\n`);
  t.not(guestAssets().kernelVersion, release());
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
  for (let i = 0; i < 100 && clones().length > 0; i++) await sleep(100);
  t.deepEqual(clones(), [], 'no clone QEMU is left waiting');
});
