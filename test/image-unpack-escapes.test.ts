// Layers crafted to write outside the rootfs: every one is refused with an error naming the layer and the entry,
// nothing beside the rootfs changes, and no partial rootfs is left.
import test from 'ava';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { UnpackError } from '../src/errors/errors.js';
import { unpackLayers } from '../src/image/unpack.js';
import { craftLayer, type LayerEntry, unpackSandbox } from './helpers/layers.js';

const file = (name: string, content = 'pwned\n'): LayerEntry => ({ header: { name, type: 'file', mode: 0o644 }, content });
const dir = (name: string): LayerEntry => ({ header: { name, type: 'directory', mode: 0o755 } });
const symlink = (name: string, linkname: string): LayerEntry => ({ header: { name, type: 'symlink', linkname } });
const hardlink = (name: string, linkname: string): LayerEntry => ({ header: { name, type: 'link', linkname } });

interface EscapeCase {
  title: string;
  /** Layers in order; each gets a harmless entry first so a partial rootfs exists when the bad one comes. */
  layers: (canary: string) => LayerEntry[][];
  entry: string | ((canary: string) => string);
  reason: RegExp;
}

const cases: EscapeCase[] = [
  { title: '".." components', layers: () => [[file('../canary/secret')]], entry: '../canary/secret', reason: /"\.\." component/ },
  { title: '".." in the middle', layers: () => [[dir('a/'), file('a/../../canary/pwned')]], entry: 'a/../../canary/pwned', reason: /"\.\." component/ },
  { title: 'an absolute path', layers: (c) => [[file(`${c}/pwned`)]], entry: (c) => `${c}/pwned`, reason: /absolute path/ },
  {
    title: 'a relative symlink out, then written through',
    layers: () => [[symlink('out', '../canary'), file('out/pwned')]],
    entry: 'out/pwned',
    reason: /symlink in its path points outside the rootfs/,
  },
  {
    title: 'an absolute symlink to the canary, then written through',
    layers: (c) => [[symlink('out', c), file('out/pwned')]],
    entry: 'out/pwned',
    reason: /symlink in its path points to a directory that does not exist in the rootfs/,
  },
  {
    title: 'a symlink out in one layer, written through in the next',
    layers: () => [[symlink('usr', '../../../../../../../canary')], [file('usr/pwned')]],
    entry: 'usr/pwned',
    reason: /points outside the rootfs/,
  },
  {
    title: 'a symlinked parent directory deep in the tree',
    layers: () => [[dir('a/'), dir('a/b/'), symlink('a/b/up', '../../../canary'), file('a/b/up/secret', 'overwritten\n')]],
    entry: 'a/b/up/secret',
    reason: /points outside the rootfs/,
  },
  {
    title: 'a chain of symlinks that ends outside',
    layers: () => [[dir('a/'), symlink('a/one', 'two'), symlink('a/two', '../..'), file('a/one/canary/pwned')]],
    entry: 'a/one/canary/pwned',
    reason: /points outside the rootfs/,
  },
  { title: 'a hardlink to a file outside by ".."', layers: () => [[hardlink('stolen', '../canary/secret')]], entry: 'stolen', reason: /"\.\." component/ },
  { title: 'a hardlink to a file outside by absolute path', layers: (c) => [[hardlink('stolen', `${c}/secret`)]], entry: 'stolen', reason: /absolute path/ },
  {
    title: 'a hardlink through a symlinked parent',
    layers: () => [[symlink('out', '../canary'), hardlink('stolen', 'out/secret')]],
    entry: 'stolen',
    reason: /points outside the rootfs/,
  },
  {
    title: 'a whiteout through a symlinked parent',
    layers: () => [[symlink('out', '../canary')], [{ header: { name: 'out/.wh.secret', type: 'file' }, content: '' }]],
    entry: 'out/.wh.secret',
    reason: /points outside the rootfs/,
  },
  {
    title: 'an opaque directory through a symlinked parent',
    layers: () => [[symlink('out', '../canary')], [{ header: { name: 'out/.wh..wh..opq', type: 'file' }, content: '' }]],
    entry: 'out/.wh..wh..opq',
    reason: /points outside the rootfs/,
  },
  {
    title: 'a device node through a symlinked parent',
    layers: () => [[symlink('dev', '..'), { header: { name: 'dev/canary/null', type: 'character-device', devmajor: 1, devminor: 3 } }]],
    entry: 'dev/canary/null',
    reason: /points outside the rootfs/,
  },
];

for (const c of cases) {
  test(`refused: ${c.title}`, async (t) => {
    const box = unpackSandbox(t);
    const before = box.outside();
    const layers = await Promise.all(c.layers(box.canary).map((entries) => craftLayer([dir('etc/'), file('etc/hostname', 'x\n'), ...entries])));
    const error = await t.throwsAsync(unpackLayers(layers, box.rootfs), { instanceOf: UnpackError });
    const entry = typeof c.entry === 'string' ? c.entry : c.entry(box.canary);
    const bad = layers[layers.length - 1]!.digest;
    t.is(error?.layer, bad);
    t.is(error?.entry, entry);
    t.regex(error?.message ?? '', c.reason);
    t.true(error?.message.startsWith(`layer ${bad}: entry ${JSON.stringify(entry)}: `));
    t.false(error?.message.includes('\n'));
    t.deepEqual(box.outside(), before, 'nothing beside the rootfs changed');
    t.false(existsSync(box.rootfs), 'no partial rootfs is left');
  });
}

test('a symlink pointing out is replaced, not written through, by a later file of the same name', async (t) => {
  const box = unpackSandbox(t);
  const before = box.outside();
  const secret = join(box.canary, 'secret');
  await unpackLayers([await craftLayer([symlink('evil', secret)]), await craftLayer([file('evil', 'mine\n')])], box.rootfs);
  t.deepEqual(box.outside(), before);
  t.true(lstatSync(join(box.rootfs, 'evil')).isFile());
  t.is(readFileSync(join(box.rootfs, 'evil'), 'utf8'), 'mine\n');
});

test('symlinks whose targets stay inside are followed: absolute ones from the rootfs root', async (t) => {
  const box = unpackSandbox(t);
  await unpackLayers(
    [
      await craftLayer([dir('usr/'), dir('usr/bin/'), symlink('bin', 'usr/bin'), dir('run/'), dir('var/'), symlink('var/run', '/run')]),
      await craftLayer([file('bin/tool', 'tool\n'), file('var/run/pid', '1\n')]),
    ],
    box.rootfs,
  );
  t.is(readFileSync(join(box.rootfs, 'usr/bin/tool'), 'utf8'), 'tool\n');
  t.is(readFileSync(join(box.rootfs, 'run/pid'), 'utf8'), '1\n');
  t.is(readlinkSync(join(box.rootfs, 'bin')), 'usr/bin');
});

test('a rootfs that is not empty is refused and left alone', async (t) => {
  const box = unpackSandbox(t);
  await unpackLayers([await craftLayer([file('keep')])], box.rootfs);
  await t.throwsAsync(unpackLayers([await craftLayer([file('other')])], box.rootfs), { message: /is not empty/ });
  t.true(existsSync(join(box.rootfs, 'keep')));
});

test('a directory swapped for a symlink out between layers is not followed: the next layer writes into the directory it had checked', async (t) => {
  const box = unpackSandbox(t);
  const before = box.outside();
  const home = join(box.rootfs, 'home', 'u');
  const next = await craftLayer([file('home/u/cfg/evil', 'root-owned\n')]);
  // What another user owning home/u could do while a later layer is still on its way.
  const swapped = { ...next, open: async () => {
    renameSync(join(home, 'cfg'), join(home, 'old'));
    symlinkSync(box.canary, join(home, 'cfg'));
    return next.open();
  } };
  await unpackLayers([await craftLayer([dir('home/'), dir('home/u/'), dir('home/u/cfg/'), file('home/u/cfg/first', '1\n')]), swapped], box.rootfs);
  t.deepEqual(box.outside(), before, 'nothing beside the rootfs changed');
  t.is(readFileSync(join(home, 'old', 'evil'), 'utf8'), 'root-owned\n');
});

test('a symlink replaced by a directory later in the same layer: later entries go into the directory', async (t) => {
  const box = unpackSandbox(t);
  await unpackLayers([await craftLayer([dir('t/'), symlink('a', 't'), file('a/one', '1\n'), dir('a/'), file('a/two', '2\n')])], box.rootfs);
  t.true(lstatSync(join(box.rootfs, 'a')).isDirectory());
  t.deepEqual(readdirSync(join(box.rootfs, 'a')), ['two']);
  t.deepEqual(readdirSync(join(box.rootfs, 't')), ['one']);
});

test('an entry name of kilobytes is refused in one short line', async (t) => {
  const box = unpackSandbox(t);
  const name = Array.from({ length: 42 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(198)}`).join('/');
  const layer = await craftLayer([file(name)]);
  const error = await t.throwsAsync(unpackLayers([layer], box.rootfs), { instanceOf: UnpackError });
  t.is(error?.entry, name, 'the error keeps the whole name');
  t.true((error?.message.length ?? 0) < 600, `${error?.message.length} characters: ${error?.message.slice(0, 100)}…`);
  t.regex(error?.message ?? '', /… \(\d+ bytes\)": name longer than 4096 bytes$/);
  t.false(existsSync(box.rootfs));
});
