// What a layer puts in the rootfs: node types, metadata, whiteouts across layers, compressions.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { MediaType } from '../src/image/media-types.js';
import { UnpackError } from '../src/errors/errors.js';
import { unpackLayers } from '../src/image/unpack.js';
import { bufferLayer, type Compression, compress, craftLayer, type LayerEntry, sha256, tarBytes, unpackSandbox } from './helpers/layers.js';

const file = (name: string, content: string, extra: Partial<LayerEntry['header']> = {}): LayerEntry => ({
  header: { name, type: 'file', mode: 0o644, ...extra },
  content,
});
const dir = (name: string, extra: Partial<LayerEntry['header']> = {}): LayerEntry => ({ header: { name, type: 'directory', mode: 0o755, ...extra } });
const whiteout = (name: string): LayerEntry => ({ header: { name, type: 'file', mode: 0o600 }, content: '' });

function tree(root: string, under = ''): string[] {
  return readdirSync(join(root, under))
    .sort()
    .flatMap((name) => {
      const rel = join(under, name);
      return lstatSync(join(root, rel)).isDirectory() ? [`${rel}/`, ...tree(root, rel)] : [rel];
    });
}

test('whiteouts and opaque directories hide what the layers below put there', async (t) => {
  const box = unpackSandbox(t);
  const lower = await craftLayer([
    dir('keep/'),
    file('keep/stays', 'lower\n'),
    file('keep/gone', 'lower\n'),
    dir('keep/gone-dir/'),
    file('keep/gone-dir/inside', 'lower\n'),
    dir('opaque/'),
    file('opaque/lower', 'lower\n'),
    dir('opaque/sub/'),
    file('opaque/sub/deep', 'lower\n'),
    dir('late-opaque/'),
    file('late-opaque/lower', 'lower\n'),
  ]);
  const upper = await craftLayer([
    whiteout('keep/.wh.gone'),
    whiteout('keep/.wh.gone-dir'),
    whiteout('keep/.wh.never-existed'),
    dir('opaque/'),
    whiteout('opaque/.wh..wh..opq'),
    file('opaque/upper', 'upper\n'),
    // the marker after this layer's own entries in that directory: they stay, the lower ones go
    dir('late-opaque/'),
    dir('late-opaque/new/'),
    file('late-opaque/new/file', 'upper\n'),
    whiteout('late-opaque/.wh..wh..opq'),
    whiteout('.wh..wh.plnk'),
  ]);
  await unpackLayers([lower, upper], box.rootfs);
  t.deepEqual(tree(box.rootfs), ['keep/', 'keep/stays', 'late-opaque/', 'late-opaque/new/', 'late-opaque/new/file', 'opaque/', 'opaque/upper']);
});

test('hardlinks, symlinks, devices and fifos are made as the layer says', async (t) => {
  const box = unpackSandbox(t);
  await unpackLayers(
    [
      await craftLayer([
        dir('bin/'),
        file('bin/busybox', 'binary\n', { mode: 0o755 }),
        { header: { name: 'bin/sh', type: 'link', linkname: 'bin/busybox' } },
        { header: { name: 'bin/ls', type: 'symlink', linkname: '/bin/busybox' } },
        { header: { name: 'bin/dangling', type: 'symlink', linkname: '../nowhere/at/all' } },
        { header: { name: 'bin/sh-link', type: 'link', linkname: 'bin/ls' } },
        dir('dev/'),
        { header: { name: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 } },
        { header: { name: 'dev/loop7', type: 'block-device', mode: 0o660, devmajor: 7, devminor: 7 } },
        { header: { name: 'dev/pipe', type: 'fifo', mode: 0o620 } },
      ]),
    ],
    box.rootfs,
  );
  const r = (p: string) => join(box.rootfs, p);
  t.is(lstatSync(r('bin/sh')).ino, lstatSync(r('bin/busybox')).ino);
  t.is(lstatSync(r('bin/busybox')).nlink, 2);
  t.is(readlinkSync(r('bin/ls')), '/bin/busybox');
  t.is(readlinkSync(r('bin/dangling')), '../nowhere/at/all');
  t.true(lstatSync(r('bin/sh-link')).isSymbolicLink(), 'a hardlink to a symlink links the symlink itself');
  const nul = lstatSync(r('dev/null'));
  t.true(nul.isCharacterDevice());
  t.is(nul.rdev, (1 << 8) | 3);
  t.is(nul.mode & 0o7777, 0o666);
  const loop = lstatSync(r('dev/loop7'));
  t.true(loop.isBlockDevice());
  t.is(loop.rdev, (7 << 8) | 7);
  t.true(lstatSync(r('dev/pipe')).isFIFO());
  t.is(lstatSync(r('dev/pipe')).mode & 0o7777, 0o620);
});

test('modes, ownership, mtimes and xattrs are kept, setuid and sticky bits too', async (t) => {
  const box = unpackSandbox(t);
  const fileTime = new Date('2020-02-03T04:05:06Z');
  const dirTime = new Date('2019-01-02T03:04:05Z');
  const linkTime = new Date('2018-05-06T07:08:09Z');
  // security.capability v2 with cap_net_raw permitted and effective
  const capability = Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  await unpackLayers(
    [
      await craftLayer([
        dir('tmp/', { mode: 0o1777, mtime: dirTime }),
        dir('shared/', { mode: 0o2775, uid: 1000, gid: 1001, mtime: dirTime }),
        file('shared/later', 'written after its directory\n', { mtime: fileTime }),
        file('su', 'setuid\n', { mode: 0o4755, uid: 1234, gid: 5678, mtime: fileTime }),
        {
          header: {
            name: 'ping',
            type: 'file',
            mode: 0o755,
            uid: 42,
            gid: 43,
            pax: { 'SCHILY.xattr.user.origin': 'layer one', 'SCHILY.xattr.security.capability': capability.toString('latin1') },
          },
          content: 'ping\n',
        },
        { header: { name: 'link', type: 'symlink', linkname: 'su', uid: 7, gid: 8, mtime: linkTime } },
      ]),
    ],
    box.rootfs,
  );
  const stat = (p: string) => lstatSync(join(box.rootfs, p));
  t.is(stat('tmp').mode & 0o7777, 0o1777);
  t.is(stat('tmp').mtimeMs, dirTime.getTime());
  t.is(stat('shared').mode & 0o7777, 0o2775);
  t.is(stat('shared').mtimeMs, dirTime.getTime(), 'a directory mtime is set after its content');
  t.deepEqual([stat('shared').uid, stat('shared').gid], [1000, 1001]);
  t.is(stat('su').mode & 0o7777, 0o4755, 'setuid survives the chown');
  t.deepEqual([stat('su').uid, stat('su').gid], [1234, 5678]);
  t.is(stat('su').mtimeMs, fileTime.getTime());
  t.deepEqual([stat('link').uid, stat('link').gid], [7, 8]);
  t.is(stat('link').mtimeMs, linkTime.getTime(), 'a symlink gets its own mtime');
  const xattr = (name: string) =>
    execFileSync('getfattr', ['--absolute-names', '--only-values', '-h', '-n', name, join(box.rootfs, 'ping')]);
  t.is(xattr('user.origin').toString(), 'layer one');
  t.deepEqual(xattr('security.capability'), capability, 'the file capability survives the chown');
});

test('uid, gid and mtime from PAX records win over the ustar fields (ids over 2097151, fractional times)', async (t) => {
  const box = unpackSandbox(t);
  await unpackLayers(
    [
      await craftLayer([
        { header: { name: 'big-ids', type: 'file', mode: 0o644, uid: 0, gid: 0, pax: { uid: '3000000', gid: '3000001', mtime: '1600000000.25' } }, content: 'x\n' },
        { header: { name: 'd', type: 'directory', mode: 0o755, pax: { uid: '4000000', gid: '4000001', mtime: '1500000000' } } },
      ]),
    ],
    box.rootfs,
  );
  const file = lstatSync(join(box.rootfs, 'big-ids'));
  t.deepEqual([file.uid, file.gid], [3000000, 3000001]);
  t.is(file.mtimeMs, 1600000000250);
  const directory = lstatSync(join(box.rootfs, 'd'));
  t.deepEqual([directory.uid, directory.gid], [4000000, 4000001]);
  t.is(directory.mtimeMs, 1500000000000);
});

for (const compression of ['none', 'gzip', 'zstd'] as Compression[]) {
  test(`a ${compression === 'none' ? 'plain' : compression} layer unpacks`, async (t) => {
    const box = unpackSandbox(t);
    const big = 'x'.repeat(3 << 20);
    await unpackLayers([await craftLayer([dir('d/'), file('d/small', 'small\n'), file('d/big', big)], compression)], box.rootfs);
    t.is(readFileSync(join(box.rootfs, 'd/small'), 'utf8'), 'small\n');
    t.is(readFileSync(join(box.rootfs, 'd/big'), 'utf8'), big);
  });
}

test('a mislabelled layer is unpacked by what its bytes are', async (t) => {
  const box = unpackSandbox(t);
  const tar = await tarBytes([file('gz-as-plain', '1\n')]);
  await unpackLayers(
    [
      bufferLayer(gzipSync(tar), MediaType.ociLayerTar),
      bufferLayer(compress(await tarBytes([file('zstd-as-gzip', '2\n')]), 'zstd'), MediaType.dockerLayerGzip),
      bufferLayer(await tarBytes([file('plain-as-gzip', '3\n')]), MediaType.ociLayerGzip),
    ],
    box.rootfs,
  );
  t.deepEqual(tree(box.rootfs), ['gz-as-plain', 'plain-as-gzip', 'zstd-as-gzip']);
});

for (const [title, corrupt] of [
  ['a truncated gzip layer', (b: Buffer) => gzipSync(b).subarray(0, 8000)],
  ['a corrupt zstd layer', (b: Buffer) => Buffer.concat([compress(b, 'zstd').subarray(0, 40), Buffer.alloc(64, 0x55)])],
  ['a truncated plain layer', (b: Buffer) => b.subarray(0, 700)],
] as Array<[string, (b: Buffer) => Buffer]>) {
  test(`${title} fails with the layer named and leaves no rootfs`, async (t) => {
    const box = unpackSandbox(t);
    const tar = await tarBytes([file('a', randomBytes(5000).toString('hex')), file('b', randomBytes(5000).toString('hex'))]);
    const good = await craftLayer([file('first', '1\n')]);
    const bad = bufferLayer(corrupt(tar), MediaType.ociLayerGzip);
    const error = await t.throwsAsync(unpackLayers([good, bad], box.rootfs), { instanceOf: UnpackError });
    t.is(error?.layer, bad.digest);
    t.false(existsSync(box.rootfs));
  });
}

test('an unknown layer media type is refused', async (t) => {
  const box = unpackSandbox(t);
  const layer = bufferLayer(await tarBytes([file('a', 'a')]), 'application/vnd.oci.image.layer.v1.tar+encrypted');
  await t.throwsAsync(unpackLayers([layer], box.rootfs), { message: `layer ${layer.digest}: unsupported layer media type application/vnd.oci.image.layer.v1.tar+encrypted` });
  t.false(existsSync(box.rootfs));
});

test('later layers replace files, directories and symlinks of earlier ones, and break hardlinks', async (t) => {
  const box = unpackSandbox(t);
  await unpackLayers(
    [
      await craftLayer([file('a', 'lower\n'), { header: { name: 'a-link', type: 'link', linkname: 'a' } }, dir('was-dir/'), file('was-dir/x', 'x'), { header: { name: 'was-link', type: 'symlink', linkname: 'a' } }]),
      await craftLayer([file('a-link', 'upper\n'), file('was-dir', 'now a file\n'), dir('was-link/')]),
    ],
    box.rootfs,
  );
  t.is(readFileSync(join(box.rootfs, 'a'), 'utf8'), 'lower\n', 'rewriting one name of a hardlinked file leaves the other');
  t.is(readFileSync(join(box.rootfs, 'a-link'), 'utf8'), 'upper\n');
  t.is(readFileSync(join(box.rootfs, 'was-dir'), 'utf8'), 'now a file\n');
  t.true(lstatSync(join(box.rootfs, 'was-link')).isDirectory());
});

test('a layer that cannot be read fails with the layer named and removes what earlier layers wrote', async (t) => {
  const box = unpackSandbox(t);
  const broken = { digest: 'sha256:' + 'ab'.repeat(32), mediaType: MediaType.ociLayerGzip, open: async () => Promise.reject(new Error('blob is not in the store')) };
  await t.throwsAsync(unpackLayers([await craftLayer([file('first', '1\n')]), broken], box.rootfs), {
    instanceOf: UnpackError,
    message: `layer ${broken.digest}: blob is not in the store`,
  });
  t.false(existsSync(box.rootfs));
});

test('each layer is checked against its diff_id: the uncompressed tar\'s digest, not the blob\'s', async (t) => {
  const tar = await tarBytes([file('a', 'a\n')]);
  const layer = { ...bufferLayer(gzipSync(tar), MediaType.ociLayerGzip), diffId: sha256(tar) };
  const good = unpackSandbox(t);
  await unpackLayers([layer], good.rootfs);
  t.is(readFileSync(join(good.rootfs, 'a'), 'utf8'), 'a\n');

  const other = await tarBytes([file('a', 'b\n')]);
  const bad = unpackSandbox(t);
  const mislabelled = { ...layer, diffId: sha256(other) };
  const error = await t.throwsAsync(unpackLayers([mislabelled], bad.rootfs), { instanceOf: UnpackError });
  t.is(error?.message, `layer ${layer.digest}: its uncompressed content is ${sha256(tar)}, not the image config's diff_id ${sha256(other)}`);
  t.false(existsSync(bad.rootfs));
});
