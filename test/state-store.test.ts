import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../src/host/atomic-file.js';
import { StateStore } from '../src/runtime/state-store.js';

const STORE_MODULE = fileURLToPath(new URL('../src/runtime/state-store.js', import.meta.url));

function tempRoot(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the container lock serialises read-modify-write across processes: no update is lost', async (t) => {
  const root = tempRoot(t);
  const store = new StateStore(root);
  const lock = await store.reserve('shared');
  store.write({ ociVersion: '1.0.2', id: 'shared', status: 'created', pid: 0, bundle: '/b', rootfs: '/b/rootfs', created: '', owner: '', driver: 'emulated' });
  lock.release();
  // Each worker bumps `pid` 20 times under the lock, with a pause between read and write to invite races.
  const worker = `
    const { StateStore } = await import(${JSON.stringify(STORE_MODULE)});
    const store = new StateStore(${JSON.stringify(root)});
    for (let i = 0; i < 20; i++) {
      const lock = await store.lock('shared');
      const record = store.read('shared');
      await new Promise((r) => setTimeout(r, 1));
      record.pid += 1;
      store.write(record);
      lock.release();
    }`;
  const workers = Array.from({ length: 6 }, () => new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', worker], { stdio: 'inherit' });
    child.on('close', resolve);
  }));
  t.deepEqual(await Promise.all(workers), [0, 0, 0, 0, 0, 0]);
  t.is(store.read('shared')!.pid, 120);
});

test('a lock held by a process that was killed is released by the kernel', async (t) => {
  const root = tempRoot(t);
  const store = new StateStore(root);
  (await store.reserve('victim')).release();
  store.write({ ociVersion: '1.0.2', id: 'victim', status: 'created', pid: 0, bundle: '/b', rootfs: '/b/rootfs', created: '', owner: '', driver: 'emulated' });
  const holder = spawn(process.execPath, ['--input-type=module', '-e', `
    const { StateStore } = await import(${JSON.stringify(STORE_MODULE)});
    await new StateStore(${JSON.stringify(root)}).lock('victim');
    process.stdout.write('held\\n');
    setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
  holder.kill('SIGKILL');
  const lock = await store.lock('victim');
  t.truthy(lock);
  lock!.release();
});

test('a deleted container cannot be locked, and waiters learn it is gone', async (t) => {
  const root = tempRoot(t);
  const store = new StateStore(root);
  const lock = await store.reserve('gone');
  store.write({ ociVersion: '1.0.2', id: 'gone', status: 'stopped', pid: 0, bundle: '/b', rootfs: '/b/rootfs', created: '', owner: '', driver: 'emulated' });
  const waiter = store.lock('gone');
  await new Promise((r) => setTimeout(r, 50));
  store.remove('gone');
  lock.release();
  t.is(await waiter, undefined);
  t.is(await store.lock('gone'), undefined);
});

test('atomic writes replace the whole file or nothing, and leave no temporary file', (t) => {
  const root = tempRoot(t);
  const path = join(root, 'state.json');
  writeFileSync(path, 'old');
  writeFileAtomic(path, 'new content');
  t.is(readFileSync(path, 'utf8'), 'new content');
  t.deepEqual(readdirSync(root), ['state.json']);
});
