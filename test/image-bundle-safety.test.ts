// What other users of the host can do with a bundle while `runbox bundle` makes it and once it is made, and what
// an interrupted `runbox bundle` leaves: the bundle is root's alone (0700), no other user can reach its rootfs
// while layers are written into it, and a run that is interrupted, or killed outright, leaves no partial bundle in
// the way of the next.
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, RUNBOX, TestEnv } from './helpers/runbox.js';
import { craftedLayer, craftImage, heldBlob, startTinyRegistry, type CraftedLayer, type TinyRegistry } from './helpers/tiny-registry.js';
import type { LayerEntry } from './helpers/layers.js';

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];

const dir = (name: string, extra: Partial<LayerEntry['header']> = {}): LayerEntry => ({ header: { name, type: 'directory', mode: 0o755, ...extra } });
const file = (name: string, content: string | Buffer, extra: Partial<LayerEntry['header']> = {}): LayerEntry => ({ header: { name, type: 'file', mode: 0o644, ...extra }, content });

/** A directory any user can list and enter, where the bundles of a test go. */
function publicDir(env: TestEnv): string {
  chmodSync(env.dir, 0o711);
  const path = join(env.dir, 'public');
  mkdirSync(path, { mode: 0o755 });
  chmodSync(path, 0o755);
  return path;
}

/** Runs a shell script as nobody. */
function asNobody(script: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('setpriv', [...NOBODY, 'sh', '-c', script, 'sh', ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The rootfs a `bundle` into `parent/name` is writing, wherever it writes it; undefined until it exists. */
function rootfsInTheMaking(parent: string, name: string): string | undefined {
  const candidates = [name, ...readdirSync(parent).filter((entry) => entry.startsWith(`.${name}.`))];
  return candidates.map((entry) => join(parent, entry, 'rootfs')).find((path) => existsSync(path));
}

async function waitFor<T>(probe: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 800; i++) {
    const found = probe();
    if (found !== undefined) return found;
    await sleep(25);
  }
  throw new Error(`never saw ${what}`);
}

/** An image whose second layer the registry holds back until released: `bundle` is mid-way while it waits. */
async function imageWithHeldLayer(t: ExecutionContext, first: LayerEntry[], second: LayerEntry[]): Promise<{ registry: TinyRegistry; ref: string; held: ReturnType<typeof heldBlob>; layer: CraftedLayer }> {
  const registry = await startTinyRegistry(t);
  const layer = await craftedLayer(second, 'none');
  const image = craftImage(registry, 'held', '1', [await craftedLayer(first), layer]);
  const held = heldBlob(0);
  registry.serveBlob(layer.digest, held.serve);
  t.teardown(() => held.release());
  return { registry, ref: image.ref, held, layer };
}

test('a bundle is root\'s alone: another user can neither run its setuid files nor enter it', async (t) => {
  const env = new TestEnv(t);
  const parent = publicDir(env);
  const registry = await startTinyRegistry(t);
  const image = craftImage(registry, 'suid', '1', [
    await craftedLayer([dir('usr/'), dir('usr/bin/'), file('usr/bin/suid-id', readFileSync('/usr/bin/id'), { mode: 0o4755, uid: 0, gid: 0 })]),
  ]);
  const made = await env.run(['bundle', '-q', '--store', join(env.dir, 'store'), '--image', image.ref, join(parent, 'bundle')]);
  t.is(made.code, 0, made.stderr);
  const suid = asNobody('"$1" -u', join(parent, 'bundle', 'rootfs', 'usr', 'bin', 'suid-id'));
  t.not(suid.stdout.trim(), '0', 'nobody ran a setuid-root file of the image as root');
  t.regex(suid.stderr, /Permission denied/);
  t.is(statSync(join(parent, 'bundle')).mode & 0o7777, 0o700);

  // An empty directory given as the bundle becomes the bundle, 0700 too.
  const given = join(parent, 'given');
  mkdirSync(given, { mode: 0o755 });
  const into = await env.run(['bundle', '-q', '--store', join(env.dir, 'store'), '--image', image.ref, given]);
  t.is(into.code, 0, into.stderr);
  t.is(statSync(given).mode & 0o7777, 0o700);
  t.true(existsSync(join(given, 'config.json')));
  const again = await env.run(['bundle', '-q', '--store', join(env.dir, 'store'), '--image', image.ref, given]);
  t.is(again.code, 1);
  t.is(errorMessage(again.stderr), `image ${image.ref}: bundle directory ${given} is not empty`);
});

test('another user cannot reach the rootfs while layers are written: a directory it owns swapped for a symlink out changes nothing', async (t) => {
  const env = new TestEnv(t);
  const parent = publicDir(env);
  const outside = join(parent, 'outside');
  mkdirSync(outside, { mode: 0o755 });
  const owned = { uid: 65534, gid: 65534 };
  const { ref, held } = await imageWithHeldLayer(
    t,
    [dir('home/'), dir('home/u/', owned), dir('home/u/cfg/', owned), file('home/u/cfg/first', 'mine\n', owned)],
    [file('home/u/cfg/evil', '#!/bin/sh\nid\n', { mode: 0o4755, uid: 0, gid: 0 })],
  );
  const making = env.run(['bundle', '-q', '--store', join(env.dir, 'store'), '--image', ref, join(parent, 'bundle')]);
  await held.sent;
  await waitFor(() => {
    const rootfs = rootfsInTheMaking(parent, 'bundle');
    return rootfs && existsSync(join(rootfs, 'home', 'u', 'cfg', 'first')) ? rootfs : undefined;
  }, 'the first layer unpacked');
  // The attack, as nobody: every place the rootfs could be, its home/u/cfg replaced by a symlink to `outside`.
  const attack = asNobody(
    'for d in "$1"/bundle "$1"/.bundle.*; do u="$d/rootfs/home/u"; mv "$u/cfg" "$u/cfg.old" && ln -s "$2" "$u/cfg" && echo swapped; done',
    parent,
    outside,
  );
  held.release();
  const made = await making;
  t.deepEqual(readdirSync(outside), [], 'nothing was written outside the rootfs');
  t.is(made.code, 0, made.stderr);
  t.false(attack.stdout.includes('swapped'), attack.stdout + attack.stderr);
  t.is(statSync(join(parent, 'bundle', 'rootfs', 'home', 'u', 'cfg', 'evil')).mode & 0o7777, 0o4755);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`bundle interrupted by ${signal} mid-unpack removes what it made`, async (t) => {
    const env = new TestEnv(t);
    const parent = publicDir(env);
    const { ref, held } = await imageWithHeldLayer(t, [dir('etc/'), file('etc/first', '1\n')], [file('etc/second', '2\n')]);
    const child = spawn(RUNBOX, ['--root', env.root, 'bundle', '-q', '--store', join(env.dir, 'store'), '--image', ref, join(parent, 'bundle')], { stdio: 'ignore' });
    t.teardown(() => child.kill('SIGKILL'));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, sig) => resolve([code, sig])));
    await held.sent;
    await waitFor(() => {
      const rootfs = rootfsInTheMaking(parent, 'bundle');
      return rootfs && existsSync(join(rootfs, 'etc', 'first')) ? rootfs : undefined;
    }, 'the first layer unpacked');
    child.kill(signal);
    const [code, killed] = await exited;
    t.true(killed === signal || code === 128 + (signal === 'SIGINT' ? 2 : 15), `exit ${code} ${killed}`);
    t.deepEqual(readdirSync(parent), [], 'no bundle, no partial bundle, no lock file');
  });
}

test('a bundle killed with SIGKILL mid-unpack leaves nothing in the target; the next run succeeds and removes the remains', async (t) => {
  const env = new TestEnv(t);
  const parent = publicDir(env);
  const { registry, ref, held, layer } = await imageWithHeldLayer(t, [dir('etc/'), file('etc/first', '1\n')], [file('etc/second', '2\n')]);
  const store = join(env.dir, 'store');
  const bundle = join(parent, 'bundle');
  const child = spawn(RUNBOX, ['--root', env.root, 'bundle', '-q', '--store', store, '--image', ref, bundle], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await held.sent;
  await waitFor(() => {
    const rootfs = rootfsInTheMaking(parent, 'bundle');
    return rootfs && existsSync(join(rootfs, 'etc', 'first')) ? rootfs : undefined;
  }, 'the first layer unpacked');
  child.kill('SIGKILL');
  await exited;
  t.false(existsSync(join(bundle, 'rootfs')), 'the target holds no partial rootfs');

  registry.serveBlob(layer.digest, undefined);
  const again = await env.run(['bundle', '-q', '--store', store, '--image', ref, bundle]);
  t.is(again.code, 0, again.stderr);
  t.is(readFileSync(join(bundle, 'rootfs', 'etc', 'second'), 'utf8'), '2\n');
  t.deepEqual(readdirSync(parent), ['bundle'], 'what the killed run left was removed');
});
