// containerd → containerd-shim-runbox-v2 → the enclave driver: an enclave container run by ctr attests to the key
// broker and gets its secret, as through the CLI; the reference values are those of the bundle containerd makes
// (its config.json, and the image's rootfs).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DRIVER_ANNOTATION } from '../src/drivers/drivers.js';
import { PrivateContainerd } from './helpers/containerd.js';
import { TestEnv, processesMentioning } from './helpers/runbox.js';
import { TestKbs } from './helpers/kbs.js';

test('ctr run with the enclave driver: the guest attests and the container reads its secret; no VM or swtpm is left', async (t) => {
  const env = new TestEnv(t);
  const kbs = new TestKbs(t, env);
  await kbs.start();
  const secret = 'through containerd';
  await kbs.putResource(t, 'default/key/ctr', secret);
  const containerd = await PrivateContainerd.start(t, kbs.env);
  // What the container is: the same ctr flags give the same config.json but for the driver's annotation (which the
  // measurement does not cover): no cgroup path, which would hold the container id.
  const flags = ['--cgroup', '', '--annotation', 'io.runbox.enclave.policy={"output": true}', '--annotation', 'io.runbox.enclave.secret.db=default/key/ctr'];
  const args = ['sha256sum', '/run/secrets/db'];

  // The config.json containerd makes for it, read off a copy run (and stopped) by the emulated driver, is measured.
  const copy = containerd.id('copy');
  const made = await containerd.ctr(['run', '-d', '--fifo-dir', join(containerd.dir, 'fifo'), '--runtime', 'io.containerd.runbox.v2',
    ...flags, '--annotation', `${DRIVER_ANNOTATION}=emulated`, 'docker.io/library/busybox:latest', copy, ...args]);
  t.is(made.code, 0, made.stderr);
  const spec = JSON.parse(readFileSync(join(containerd.dir, 'state', 'io.containerd.runtime.v2.task', 'default', copy, 'config.json'), 'utf8'));
  await containerd.ctr(['task', 'kill', '-s', 'KILL', copy]);
  for (let i = 0; i < 50 && (await containerd.ctr(['task', 'delete', copy])).code !== 0; i++) await sleep(100);
  // And the image's rootfs as containerd's snapshotter makes it (its dm-verity root hash is part of the initdata).
  const bundle = join(env.dir, 'ctr-bundle');
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  const view = join(env.dir, 'image-view');
  mkdirSync(view);
  const mounted = await containerd.ctr(['images', 'mount', 'docker.io/library/busybox:latest', view]);
  t.is(mounted.code, 0, mounted.stderr);
  try {
    execFileSync('cp', ['-a', `${view}/.`, join(bundle, 'rootfs')]);
  } finally {
    await containerd.ctr(['images', 'unmount', '--rm', view]);
  }
  delete spec.annotations[DRIVER_ANNOTATION];
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  await kbs.register(t, 'ctr-db', bundle);

  const result = await containerd.run(containerd.id('enclave'), args, ['--rm', ...flags, '--annotation', `${DRIVER_ANNOTATION}=enclave`]);
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, `${createHash('sha256').update(secret).digest('hex')}  /run/secrets/db\n`);
  t.regex(kbs.log(), /attested: matches reference values "ctr-db"/);
  for (let i = 0; i < 100 && containerd.shimPids().length; i++) await sleep(100);
  t.deepEqual(containerd.shimPids(), [], 'the shim exited');
  t.deepEqual(processesMentioning(join(containerd.dir, 'state')), [], 'no QEMU or swtpm is left');
});
