// The cache of rootfs images (src/drivers/qemu/rootfs-image-cache.ts): a container rootfs that is an overlay of
// image layers with an empty writable layer is built once and copied into each VM's disk from the cache; one with
// something in its writable layer, or whose layers are new, gets an image of what it holds; the cache keeps within its
// size and drops what belongs to layers that are gone. The images are read back from the disk with fsck.erofs.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { createEmptyDisk, fillRootfsDisk, nextImageOffset } from '../src/drivers/qemu/rootfs-image.js';

test.serial.before(() => {
  process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR = mkdtempSync('/tmp/rbx-rootfs-cache-');
});
test.serial.after.always(() => {
  rmSync(process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR!, { recursive: true, force: true });
});

function run(t: ExecutionContext, command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) t.fail(`${command} ${args.join(' ')}: ${result.stderr}`);
}

/** Layers in work/NAME with the files given (path: content). */
function layer(work: string, name: string, files: Record<string, string>): string {
  const dir = join(work, name);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** An overlay rootfs of lowers (topmost first) with a writable layer of its own, as containerd mounts one. */
function rootfs(t: ExecutionContext, work: string, name: string, lowers: string[], upperFiles: Record<string, string> = {}): string {
  const upper = layer(work, `${name}-upper`, upperFiles);
  const workdir = join(work, `${name}-work`);
  const merged = join(work, name);
  mkdirSync(workdir);
  mkdirSync(merged);
  run(t, 'mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${workdir}`, merged]);
  t.teardown(() => spawnSync('umount', [merged]));
  return merged;
}

/** The files of the erofs image at offset in disk, as fsck.erofs extracts them (no host kernel's erofs needed). */
function filesIn(t: ExecutionContext, work: string, disk: string, offset: number, size: number): Record<string, string> {
  const image = join(mkdtempSync(join(work, 'image-')), 'image.erofs');
  const fd = openSync(disk, 'r');
  const bytes = Buffer.alloc(size);
  readSync(fd, bytes, 0, size, offset);
  closeSync(fd);
  writeFileSync(image, bytes);
  const extracted = mkdtempSync(join(work, 'extracted-'));
  run(t, 'fsck.erofs', [`--extract=${extracted}`, '--overwrite', image]);
  const files: Record<string, string> = {};
  const walk = (dir: string, prefix: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name), `${prefix}${entry.name}/`);
      else files[`${prefix}${entry.name}`] = readFileSync(join(dir, entry.name), 'utf8');
    }
  };
  walk(extracted, '');
  return files;
}

const cacheEntries = () => readdirSync(process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR!).filter((name) => name.endsWith('.erofs')).sort();

test.serial('two containers of the same layers: the image is built once, and each VM disk holds it', async (t) => {
  const work = mkdtempSync('/tmp/rbx-rootfs-cache-work-');
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const base = layer(work, 'base', { 'etc/os': 'base\n', 'bin/tool': 'v1\n' });
  const top = layer(work, 'top', { 'bin/tool': 'v2\n', 'app/main': 'hello\n' });
  const disk = join(work, 'disk');
  createEmptyDisk(disk);
  const before = cacheEntries();
  const first = await fillRootfsDisk(rootfs(t, work, 'c1', [top, base]), disk, 0);
  const added = cacheEntries().filter((name) => !before.includes(name));
  t.is(added.length, 1, 'the image went into the cache');
  const cached = statSync(join(process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR!, added[0]!));
  t.is(cached.mode & 0o777, 0o600);
  const offset = nextImageOffset(0, first);
  const second = await fillRootfsDisk(rootfs(t, work, 'c2', [top, base]), disk, offset);
  t.is(second, first);
  t.deepEqual(cacheEntries().filter((name) => !before.includes(name)), added, 'the second container used the same entry');
  t.is(statSync(join(process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR!, added[0]!)).ino, cached.ino, 'and did not build it again');
  const expected = { 'etc/os': 'base\n', 'bin/tool': 'v2\n', 'app/main': 'hello\n' };
  t.deepEqual(filesIn(t, work, disk, 0, first), expected);
  t.deepEqual(filesIn(t, work, disk, offset, second), expected);
});

test.serial('a writable layer with something in it, or layers made anew at the same paths, get an image of what they hold', async (t) => {
  const work = mkdtempSync('/tmp/rbx-rootfs-cache-work-');
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  let base = layer(work, 'base', { 'etc/os': 'old\n' });
  const disk = join(work, 'disk');
  createEmptyDisk(disk);
  const before = cacheEntries();
  const size = await fillRootfsDisk(rootfs(t, work, 'c1', [base], { 'data/copied-up': 'volume\n' }), disk, 0);
  t.deepEqual(filesIn(t, work, disk, 0, size), { 'etc/os': 'old\n', 'data/copied-up': 'volume\n' });
  t.deepEqual(cacheEntries(), before, 'nothing cached for a rootfs whose writable layer holds something');

  const oldSize = await fillRootfsDisk(rootfs(t, work, 'c2', [base]), disk, 0);
  t.deepEqual(filesIn(t, work, disk, 0, oldSize), { 'etc/os': 'old\n' });
  spawnSync('umount', [join(work, 'c2')]);
  rmSync(base, { recursive: true });
  base = layer(work, 'base', { 'etc/os': 'new\n' });
  const newSize = await fillRootfsDisk(rootfs(t, work, 'c3', [base]), disk, 0);
  t.deepEqual(filesIn(t, work, disk, 0, newSize), { 'etc/os': 'new\n' }, 'a layer made anew at the same path is another entry');
  t.is(cacheEntries().filter((name) => !before.includes(name)).length, 1, 'the entry of the removed layer is dropped');
});

test.serial('the cache keeps within RUNBOX_QEMU_ROOTFS_CACHE_BYTES, the least recently used going first, drops what a killed builder left; 0 turns it off', async (t) => {
  const work = mkdtempSync('/tmp/rbx-rootfs-cache-work-');
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  t.teardown(() => delete process.env.RUNBOX_QEMU_ROOTFS_CACHE_BYTES);
  const disk = join(work, 'disk');
  createEmptyDisk(disk);
  for (const entry of readdirSync(process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR!)) rmSync(join(process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR!, entry));
  const layers = ['a', 'b', 'c'].map((name) => layer(work, name, { [`${name}.txt`]: name.repeat(64 * 1024) }));
  const one = await fillRootfsDisk(rootfs(t, work, 'ca', [layers[0]!]), disk, 0);
  const [a] = cacheEntries();
  process.env.RUNBOX_QEMU_ROOTFS_CACHE_BYTES = String(Math.floor(one * 2.5));
  await fillRootfsDisk(rootfs(t, work, 'cb', [layers[1]!]), disk, 0);
  const [b] = cacheEntries().filter((name) => name !== a);
  // a used again: b is now the least recently used.
  await new Promise((resolve) => setTimeout(resolve, 20));
  await fillRootfsDisk(rootfs(t, work, 'ca2', [layers[0]!]), disk, 0);
  await fillRootfsDisk(rootfs(t, work, 'cc', [layers[2]!]), disk, 0);
  const [c] = cacheEntries().filter((name) => name !== a && name !== b);
  t.truthy(c);
  t.deepEqual(cacheEntries(), [a!, c!].sort(), 'the least recently used entry went');
  const size = await fillRootfsDisk(rootfs(t, work, 'cb2', [layers[1]!]), disk, 0);
  t.deepEqual(filesIn(t, work, disk, 0, size), { 'b.txt': 'b'.repeat(64 * 1024) }, 'an entry that went is built again');

  // What a builder killed midway left (its pid gone) goes at the next build.
  const cacheDir = process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR!;
  const deadPid = spawnSync('true').pid!;
  writeFileSync(join(cacheDir, `${'0'.repeat(64)}.erofs.tmp-${deadPid}`), 'partial');
  writeFileSync(join(cacheDir, `${'0'.repeat(64)}.json.tmp-${deadPid}`), '{');
  writeFileSync(join(cacheDir, `${'1'.repeat(64)}.erofs.tmp-${process.pid}`), 'a live builder\'s');
  await fillRootfsDisk(rootfs(t, work, 'cc2', [layer(work, 'd', { 'd.txt': 'd' })]), disk, 0);
  t.deepEqual(readdirSync(cacheDir).filter((name) => name.startsWith('0'.repeat(64)) || name.startsWith('1'.repeat(64))), [`${'1'.repeat(64)}.erofs.tmp-${process.pid}`]);
  rmSync(join(cacheDir, `${'1'.repeat(64)}.erofs.tmp-${process.pid}`));

  process.env.RUNBOX_QEMU_ROOTFS_CACHE_BYTES = '0';
  for (const entry of readdirSync(process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR!)) rmSync(join(process.env.RUNBOX_QEMU_ROOTFS_CACHE_DIR!, entry));
  const uncached = await fillRootfsDisk(rootfs(t, work, 'cd', [layers[2]!]), disk, 0);
  t.deepEqual(filesIn(t, work, disk, 0, uncached), { 'c.txt': 'c'.repeat(64 * 1024) });
  t.deepEqual(cacheEntries(), []);
});
