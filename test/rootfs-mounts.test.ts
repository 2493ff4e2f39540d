// The shim's rootfs mounts (src/shim/rootfs-mounts.ts), as containerd hands them over in CreateTaskRequest: an
// overlay of the overlayfs snapshotter's directories, a bind (read-write or read-only), each by mount(2); a mount
// that cannot be made names what failed and leaves nothing mounted.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { mountRootfs, unmountRootfs } from '../src/shim/rootfs-mounts.js';

function workDir(t: ExecutionContext): string {
  const dir = mkdtempSync('/tmp/rbx-rootfs-mounts-');
  t.teardown(async () => {
    await unmountRootfs(join(dir, 'rootfs'));
    rmSync(dir, { recursive: true, force: true });
  });
  mkdirSync(join(dir, 'rootfs'));
  return dir;
}

function mountOptionsOf(path: string): string[] | undefined {
  const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4] === path).pop();
  return line?.split(' ')[5]?.split(',');
}

test('an overlay of the snapshotter\'s directories: the layers merged, writes going to the upper one', async (t) => {
  const dir = workDir(t);
  for (const name of ['lower1', 'lower2', 'upper', 'work']) mkdirSync(join(dir, name));
  writeFileSync(join(dir, 'lower1', 'a'), 'top\n');
  writeFileSync(join(dir, 'lower2', 'a'), 'bottom\n');
  writeFileSync(join(dir, 'lower2', 'b'), 'only below\n');
  const rootfs = join(dir, 'rootfs');
  await mountRootfs([{
    type: 'overlay', source: 'overlay',
    options: ['index=off', `workdir=${join(dir, 'work')}`, `upperdir=${join(dir, 'upper')}`, `lowerdir=${join(dir, 'lower1')}:${join(dir, 'lower2')}`],
  }], rootfs);
  t.is(readFileSync(join(rootfs, 'a'), 'utf8'), 'top\n');
  t.is(readFileSync(join(rootfs, 'b'), 'utf8'), 'only below\n');
  writeFileSync(join(rootfs, 'c'), 'new\n');
  t.is(readFileSync(join(dir, 'upper', 'c'), 'utf8'), 'new\n');
  await unmountRootfs(rootfs);
  t.is(mountOptionsOf(rootfs), undefined, 'unmounted');
});

test('a bind, read-write or read-only (remounted so, as a bind ignores ro)', async (t) => {
  const dir = workDir(t);
  mkdirSync(join(dir, 'source'));
  writeFileSync(join(dir, 'source', 'f'), 'x\n');
  const rootfs = join(dir, 'rootfs');
  await mountRootfs([{ type: 'bind', source: join(dir, 'source'), options: ['rbind', 'rw'] }], rootfs);
  t.is(readFileSync(join(rootfs, 'f'), 'utf8'), 'x\n');
  t.true(mountOptionsOf(rootfs)!.includes('rw'));
  await unmountRootfs(rootfs);
  await mountRootfs([{ type: 'none', source: join(dir, 'source'), options: ['rbind', 'ro'] }], rootfs);
  t.true(mountOptionsOf(rootfs)!.includes('ro'));
  t.throws(() => writeFileSync(join(rootfs, 'g'), 'y'), { code: 'EROFS' });
});

test('a mount that fails names the mount and the reason, and leaves nothing mounted', async (t) => {
  const dir = workDir(t);
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(dir, 'lower'));
  await t.throwsAsync(mountRootfs([
    { type: 'bind', source: join(dir, 'lower'), options: ['rbind'] },
    { type: 'overlay', source: 'overlay', options: [`lowerdir=${join(dir, 'absent')}`] },
  ], rootfs), { message: `mount overlay overlay on ${rootfs}: No such file or directory` });
  t.is(mountOptionsOf(rootfs), undefined, 'the first mount was undone');
});
