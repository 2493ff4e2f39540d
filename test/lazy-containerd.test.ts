// Lazy loading through containerd: `runbox bundle --image REF --lazy DIR` makes a rootfs served on demand, and
// `ctr run --rootfs DIR/rootfs --runtime io.containerd.runbox.v2` starts a container on it before the image's
// layers are local, under the emulated driver and in a microVM (which gets the image over NBD).
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PrivateContainerd } from './helpers/containerd.js';
import { layoutWithFiles, pushEstargz, seededBytes } from './helpers/estargz.js';
import { lazyScratch } from './helpers/lazy.js';
import { startRegistry } from './helpers/registry.js';
import { TestEnv } from './helpers/runbox.js';

const BIG = seededBytes(6 * 1024 * 1024, 41);
const BIG_MD5 = createHash('md5').update(BIG).digest('hex');
const UNREAD = seededBytes(1024 * 1024, 42);

for (const driver of ['emulated', 'qemu'] as const) {
  test(`ctr run --rootfs of a lazy bundle with the runbox shim (${driver}): the container reads what was never fetched before it started`, async (t) => {
    const { dir, store } = lazyScratch(t);
    const bundle = join(dir, 'bundle');
    const registry = await startRegistry(t);
    const builder = await PrivateContainerd.start(t);
    const image = await pushEstargz(builder, registry, layoutWithFiles(t, { 'data/big': BIG, 'data/unread': UNREAD }), 'lazy/ctd:1');
    const containerd = await PrivateContainerd.start(t, { RUNBOX_DRIVER: driver, RUNBOX_QEMU_ACCEL: 'tcg', RUNBOX_QEMU_TEMPLATE_DIR: join(dir, 'templates') });
    const env = new TestEnv(t);
    const made = await env.run(['bundle', '--image', image, '--lazy', '--lazy-background-rate', '0', '--store', store, bundle]);
    t.is(made.code, 0, made.stderr);
    const chunks = () => readdirSync(join(store, 'blobs', 'sha256')).filter((hex) => existsSync(join(store, 'blobs', 'sha256', hex))).length;
    const before = chunks();
    const ran = await containerd.ctr(['run', '--rm', '--rootfs', '--runtime', 'io.containerd.runbox.v2', join(bundle, 'rootfs'), containerd.id(), 'md5sum', '/data/big'], { timeout: 120_000 });
    t.is(ran.code, 0, ran.stderr);
    t.is(ran.stdout, `${BIG_MD5}  /data/big\n`);
    t.true(chunks() > before, 'its chunks were fetched while the container ran');
    const unread = createHash('sha256').update(UNREAD).digest('hex');
    t.false(existsSync(join(store, 'blobs', 'sha256', unread)), 'a file nothing read was never fetched: the rootfs was not copied');
  });
}
