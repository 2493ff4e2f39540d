// The microVM guest on its own, with real QEMU under TCG: the guest kernel boots a test init (scripts/guest/
// guest-probe.c, built on native/agent/guest.h) from an initramfs made like the agent's, which loads the modules, finds
// virtio-serial ports by name, and mounts rootfs images from buildRootfsImage() under a writable overlay.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync, chmodSync, chownSync, linkSync, symlinkSync, existsSync, utimesSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestAssets } from '../src/drivers/qemu/guest-assets.js';
import { bootToPowerOff, buildInitramfs, compileStaticInit } from '../bench/guest-bare-boot.js';
import { buildRootfsImage, type RootfsFsType } from '../src/drivers/qemu/rootfs-image.js';
import { PROJECT } from './helpers/runbox.js';

const MODULES = [
  'virtio_ring', 'virtio', 'virtio_mmio', 'virtio_console', 'virtio_blk', 'libcrc32c', 'erofs', 'overlay', 'loop',
  'failover', 'net_failover', 'virtio_net',
  // built by scripts/guest/build-9p-modules.sh where the guest kernel's headers and source are installed
  ...(existsSync(join(PROJECT, 'build', 'guest', '9p-modules', '9p.ko')) ? ['netfs', '9pnet', '9pnet_virtio', '9p'] : []),
];

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-guest-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let probeInitrd: Promise<string> | undefined;
const probeDir = mkdtempSync(join(tmpdir(), 'runbox-guest-probe-'));
test.after.always(() => rmSync(probeDir, { recursive: true, force: true }));

/** The probe as /init of an initramfs built by the same script as the agent's, once for the whole file. */
function probe(): Promise<string> {
  probeInitrd ??= (async () => {
    const init = join(probeDir, 'probe');
    await compileStaticInit(['native/probes/guest-probe.c', 'native/agent/guest-init.c', 'native/agent/guest-port.c', 'native/agent/guest-rootfs.c', 'native/common/util.c', 'native/agent/log.c'], init);
    await buildInitramfs(init, join(probeDir, 'initrd.img'));
    return join(probeDir, 'initrd.img');
  })();
  return probeInitrd;
}

function port(name: string, file: string): string[] {
  return ['-chardev', `file,id=${name},path=${file}`, '-device', `virtserialport,chardev=${name},name=${name}`];
}

function consoleLines(console: string): string[] {
  return console.split(/\r?\n/).filter((line) => line.startsWith('probe: ') && !line.startsWith('probe: timing')).map((line) => line.slice(7));
}

test('the guest kernel boots the initramfs init as pid 1, which loads the modules and finds virtio-serial ports by name', async (t) => {
  const dir = tempDir(t);
  const hello = join(dir, 'hello.out');
  const boot = await bootToPowerOff({
    initrd: await probe(),
    qemuArgs: ['-device', 'virtio-serial-device', ...port('other', join(dir, 'other.out')), ...port('hello', hello)],
  });
  const lines = consoleLines(boot.console);
  t.is(lines[0], `pid 1, kernel ${guestAssets().kernelVersion}`, boot.console);
  const loaded = lines[1]!.split(' ').slice(1);
  t.deepEqual([...loaded].sort(), [...MODULES].sort(), 'every module of the initramfs is loaded');
  t.regex(lines[2]!, /^port hello: \/dev\/vport\dp\d$/);
  t.is(lines[3], 'port nonexistent: no such file or directory');
  t.is(readFileSync(hello, 'utf8'), 'hello from the guest\n', 'what the guest wrote to the port named hello reached its host file');
  t.is(readFileSync(join(dir, 'other.out'), 'utf8'), '', 'and nothing went to the other port');
  t.is(lines.at(-1), 'done');
});

test('the built initramfs boots the runbox agent as init: with no agent port it says so on the console and powers off', async (t) => {
  const boot = await bootToPowerOff({ initrd: guestAssets().initrd });
  t.regex(boot.console, /runbox-agent: .*agent\.0/);
  t.notRegex(boot.console, /guest init:/, 'guest_init did its part');
  t.regex(boot.console, /reboot: Power down/);
});

/** A rootfs with everything an image must keep. */
function fixtureRootfs(dir: string): string {
  const root = join(dir, 'rootfs');
  mkdirSync(join(root, 'etc', 'nested', 'deeper'), { recursive: true });
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(root, 'etc', 'nested', 'deeper', 'big'), randomBytes(3 << 20));
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'setuid'), '#!/bin/sh\n');
  chmodSync(join(root, 'setuid'), 0o4755);
  writeFileSync(join(root, 'setgid'), 'g');
  chmodSync(join(root, 'setgid'), 0o2711);
  linkSync(join(root, 'setuid'), join(root, 'hardlink-a'));
  linkSync(join(root, 'setuid'), join(root, 'etc', 'hardlink-b'));
  symlinkSync('passwd', join(root, 'etc', 'relative-link'));
  symlinkSync('/etc/passwd', join(root, 'absolute-link'));
  symlinkSync('/nowhere/at/all', join(root, 'dangling-link'));
  mkdirSync(join(root, 'dev'));
  execFileSync('mknod', ['-m', '666', join(root, 'dev', 'null'), 'c', '1', '3']);
  execFileSync('mknod', ['-m', '660', join(root, 'dev', 'loop7'), 'b', '7', '7']);
  execFileSync('mkfifo', ['-m', '620', join(root, 'fifo')]);
  mkdirSync(join(root, 'tmp'));
  chmodSync(join(root, 'tmp'), 0o1777);
  mkdirSync(join(root, 'home', 'user'), { recursive: true });
  chownSync(join(root, 'home', 'user'), 1000, 1001);
  chmodSync(join(root, 'home', 'user'), 0o750);
  writeFileSync(join(root, 'home', 'user', 'secret'), 'mine');
  chownSync(join(root, 'home', 'user', 'secret'), 100000, 100000);
  chmodSync(join(root, 'home', 'user', 'secret'), 0o600);
  utimesSync(join(root, 'etc', 'passwd'), 1_000_000_000, 1_000_000_000);
  return root;
}

interface Entry { mode: string; uid: string; gid: string; nlink: string; ino: string; rdev: string; size: string; mtime: string; hash: string; target: string }

function parseListing(text: string): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  for (const line of text.split('\n').filter(Boolean)) {
    const [path, mode, uid, gid, nlink, ino, rdev, size, mtime, hash, target] = line.split('\t');
    entries.set(path!, { mode: mode!, uid: uid!, gid: gid!, nlink: nlink!, ino: ino!, rdev: rdev!, size: size!, mtime: mtime!, hash: hash!, target: target ?? '' });
  }
  return entries;
}

function fnv1a(data: Buffer): string {
  let h = 2166136261;
  for (const byte of data) h = Math.imul(h ^ byte, 16777619) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** The host's view of the fixture, in the probe's format. */
function hostListing(root: string): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  const visit = (rel: string): void => {
    const path = join(root, rel);
    const st = lstatSync(path);
    const major = Number((BigInt(st.rdev) >> 8n) & 0xfffn) | Number((BigInt(st.rdev) >> 32n) & ~0xfffn);
    const minor = Number(BigInt(st.rdev) & 0xffn) | Number((BigInt(st.rdev) >> 12n) & ~0xffn);
    entries.set(rel || '/', {
      mode: st.mode.toString(8), uid: String(st.uid), gid: String(st.gid), nlink: String(st.nlink), ino: String(st.ino),
      rdev: `${major}:${minor}`, size: String(st.size), mtime: String(Math.floor(st.mtimeMs / 1000)),
      hash: st.isFile() ? fnv1a(readFileSync(path)) : '00000000', target: st.isSymbolicLink() ? readlinkSync(path) : '',
    });
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) visit(`${rel}/${name}`);
  };
  visit('');
  return entries;
}

/** What an image must keep of each entry; directory sizes and link counts are the filesystem's own business. */
function kept(entries: Map<string, Entry>): Record<string, Omit<Entry, 'ino'>> {
  const out: Record<string, Omit<Entry, 'ino'>> = {};
  for (const [path, { ino: _ino, ...entry }] of entries) {
    const isDir = entry.mode.startsWith('4') && entry.mode.length === 5;
    out[path] = isDir ? { ...entry, size: '-', nlink: '-' } : entry;
  }
  return out;
}

/** Paths grouped by inode: the hardlinks. */
function linkGroups(entries: Map<string, Entry>): string[][] {
  const groups = new Map<string, string[]>();
  for (const [path, { ino }] of entries) groups.set(ino, [...(groups.get(ino) ?? []), path]);
  return [...groups.values()].filter((group) => group.length > 1).map((group) => group.sort()).sort();
}

for (const fstype of ['erofs', 'ext4'] as RootfsFsType[]) {
  test(`an ${fstype} image of a rootfs keeps symlinks, hardlinks, device nodes, modes, owners and times, and mounts writable in the guest`, async (t) => {
    const dir = tempDir(t);
    const rootfs = fixtureRootfs(dir);
    const image = await buildRootfsImage(rootfs, join(dir, 'rootfs.img'), fstype);
    t.deepEqual(image, { path: join(dir, 'rootfs.img'), fstype });
    const listing = join(dir, 'listing.out');
    const boot = await bootToPowerOff({
      initrd: await probe(),
      cmdline: [`image_fstype=${fstype}`],
      qemuArgs: [
        '-device', 'virtio-serial-device', ...port('listing', listing),
        '-drive', `file=${image.path},format=raw,if=none,id=rootfs,readonly=on`, '-device', 'virtio-blk-device,drive=rootfs',
      ],
    });
    const lines = consoleLines(boot.console);
    t.true(lines.includes(`mounted /dev/vda (${fstype}) at /mnt/rootfs`), boot.console);
    const host = hostListing(rootfs);
    const guest = parseListing(readFileSync(listing, 'utf8'));
    t.deepEqual(kept(guest), kept(host));
    t.deepEqual(linkGroups(guest), [['/etc/hardlink-b', '/hardlink-a', '/setuid']]);
    t.deepEqual(linkGroups(guest), linkGroups(host));
    t.true(lines.includes('write in the overlay: ok'));
    t.true(lines.includes('remove from the overlay: ok'));
    t.true(lines.includes('layer mounts detached: no such file or directory'), 'only the overlay holds the image');
    t.true(existsSync(join(rootfs, 'hardlink-a')) && !existsSync(join(rootfs, 'written-in-guest')), 'the host rootfs is untouched');
  });
}

test('the kernel parameters carry the host TSC frequency (not a constant) and the delay-loop count from it', (t) => {
  const cmdline = guestAssets().cmdline;
  const param = (name: string) => Number(cmdline.find((p) => p.startsWith(`${name}=`))?.slice(name.length + 1));
  const cpuinfoKhz = Number(/^cpu MHz\s*:\s*([0-9.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))![1]) * 1000;
  const tscKhz = param('tsc_early_khz');
  t.true(Math.abs(tscKhz - cpuinfoKhz) / cpuinfoKhz < 0.05, `tsc_early_khz=${tscKhz}, host cpu MHz ${cpuinfoKhz / 1000}`);
  const hz = Number(readFileSync(join(guestAssets().kernel, '..', 'kernel-hz'), 'utf8'));
  t.is(param('lpj'), Math.round((tscKhz * 1000) / hz));
  t.true(cmdline.includes('console=ttyS0') && cmdline.includes('panic=-1'));
});

test('missing guest assets give an error naming what is missing and the command that makes it', (t) => {
  const dir = tempDir(t);
  t.throws(() => guestAssets(dir), { message: `the microVM guest kernel is missing (${join(dir, 'vmlinux')}): run \`npm run setup\` (scripts/guest/fetch-kernel.sh)` });
  writeFileSync(join(dir, 'vmlinux'), '');
  writeFileSync(join(dir, 'kernel-version'), '6.1.0-0-cloud-amd64\n');
  t.throws(() => guestAssets(dir), { message: `the microVM initramfs is missing (${join(dir, 'initrd.img')}): run \`npm run build\` (scripts/guest/build-initramfs.sh)` });
});

test('an image of something that is not a directory is a clear error and leaves no file', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'rootfs.img');
  await t.throwsAsync(buildRootfsImage(join(dir, 'absent'), out), { message: `cannot build a rootfs image: ${join(dir, 'absent')} is not a directory` });
  writeFileSync(join(dir, 'file'), 'x');
  await t.throwsAsync(buildRootfsImage(join(dir, 'file'), out), { message: /is not a directory/ });
  t.false(existsSync(out));
});
