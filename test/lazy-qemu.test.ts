// Lazy loading in a microVM: the qemu driver attaches a lazily served rootfs as a virtio-blk disk over NBD from
// the store's lazy loader (the same EROFS image the emulated driver loop-mounts), booted or restored from a VM
// template. Real QEMU under TCG, through the CLI.
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { unmountUnder } from '../src/host/mounts.js';
import { PrivateContainerd } from './helpers/containerd.js';
import { layoutWithFiles, pushEstargz, seededBytes } from './helpers/estargz.js';
import { lazyScratch, loaderGone, loaderProcesses } from './helpers/lazy.js';
import { startFaultProxy, startRegistry, type Registry } from './helpers/registry.js';
import { TestEnv } from './helpers/runbox.js';
import { cleanupList } from './helpers/teardown.js';

const BIG = seededBytes(6 * 1024 * 1024, 21);
const UNREAD = seededBytes(5 * 1024 * 1024, 22);
const BIG_MD5 = createHash('md5').update(BIG).digest('hex');
const setup = cleanupList();
let registry: Registry;

test.before(async () => {
  const containerd = await PrivateContainerd.start(setup);
  registry = await startRegistry(setup);
  await pushEstargz(containerd, registry, layoutWithFiles(setup, { 'data/big': BIG, 'data/unread': UNREAD }), 'lazy/vm:1');
});
test.after.always(() => setup.run());

function vmEnv(env: TestEnv): NodeJS.ProcessEnv {
  return { ...process.env, RUNBOX_DRIVER: 'qemu', RUNBOX_QEMU_ACCEL: 'tcg', RUNBOX_QEMU_TEMPLATE_DIR: join(env.dir, 'templates') };
}

async function lazyBundle(t: { teardown(f: () => unknown): void }, env: TestEnv, image: string, args: string[]): Promise<{ bundle: string; store: string }> {
  const { dir, store } = lazyScratch(t);
  const bundle = join(dir, 'bundle');
  const made = await env.run(['bundle', '--image', image, '--lazy', '--lazy-background-rate', '0', '--store', store, bundle, '--', ...args]);
  if (made.code !== 0) throw new Error(made.stderr);
  return { bundle, store };
}

/** Whether the store holds the 4 MiB chunks of `bytes` (eStargz's default chunk size). */
function chunksStored(store: string, bytes: Buffer): boolean[] {
  const result: boolean[] = [];
  for (let at = 0; at < bytes.length; at += 4 * 1024 * 1024) {
    const hex = createHash('sha256').update(bytes.subarray(at, at + 4 * 1024 * 1024)).digest('hex');
    result.push(existsSync(join(store, 'blobs', 'sha256', hex)));
  }
  return result;
}

test('a microVM reads its lazy rootfs over NBD, only what it reads: booted, then restored from a template', async (t) => {
  const env = new TestEnv(t);
  const proxy = await startFaultProxy(t, registry.host);
  const { bundle, store } = await lazyBundle(t, env, `${proxy.host}/lazy/vm:1`, ['sh', '-c', 'md5sum /data/big; mount | grep -c "^overlay on / "']);
  const first = await env.run(['run', '--bundle', bundle, env.id()], { env: vmEnv(env), timeout: 120_000 });
  t.is(first.code, 0, first.stderr);
  t.is(first.stdout, `${BIG_MD5}  /data/big\n1\n`);
  const templates = readdirSync(join(env.dir, 'templates')).filter((name) => !name.endsWith('.lock'));
  t.is(templates.length, 1, 'a template was made');
  const second = await env.run(['run', '--bundle', bundle, env.id()], { env: vmEnv(env), timeout: 120_000 });
  t.is(second.code, 0, second.stderr);
  t.is(second.stdout, `${BIG_MD5}  /data/big\n1\n`, 'the clone restored from the template reads the lazy disk');
  t.deepEqual(chunksStored(store, BIG), [true, true], 'what the VM read was fetched');
  t.deepEqual(chunksStored(store, UNREAD), [false, false], 'what nothing read was not');
});

test('the lazy loader\'s server killed with SIGKILL while a microVM reads: QEMU reconnects and the read completes', async (t) => {
  const env = new TestEnv(t);
  const proxy = await startFaultProxy(t, registry.host);
  const { bundle, store } = await lazyBundle(t, env, `${proxy.host}/lazy/vm:1`, ['md5sum', '/data/big']);
  let release!: () => void;
  proxy.gate = new Promise((resolve) => (release = resolve));
  const running = env.run(['run', '--bundle', bundle, env.id()], { env: vmEnv(env), timeout: 120_000 });
  let ended: Awaited<typeof running> | undefined;
  void running.then((result) => (ended = result));
  for (let i = 0; i < 1200 && proxy.held === 0 && !ended; i++) await sleep(50);
  t.true(proxy.held > 0, `the VM waits for a chunk${ended ? `; the run ended first: ${JSON.stringify(ended)}` : ''}`);
  const [server] = loaderProcesses(store).server;
  process.kill(server!, 'SIGKILL');
  for (let i = 0; i < 100 && !loaderProcesses(store).server.some((pid) => pid !== server); i++) await sleep(50);
  release();
  const result = await running;
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, `${BIG_MD5}  /data/big\n`);
  unmountUnder(bundle);
  t.deepEqual(await loaderGone(store), { processes: [], mounts: [], loops: [] }, 'the VM gone and the bundle unmounted, the loader ends');
});
