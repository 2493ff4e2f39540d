// containerd → containerd-shim-runbox-v2 → the qemu driver: the container runs under the guest's kernel.
import { writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { guestAssets } from '../src/hypervisor/guest-assets.js';
import { DRIVER_ANNOTATION } from '../src/hypervisor/drivers.js';
import { PrivateContainerd } from './helpers/containerd.js';

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
