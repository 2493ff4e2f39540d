// Image config → config.json, and an image's layers unpacked by runbox run as a container.
import test from 'ava';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveUser, specFromImageConfig, STOP_SIGNAL_ANNOTATION } from '../src/image/bundle-spec.js';
import type { ImageConfig } from '../src/image/image-config.js';
import { unpackLayers } from '../src/image/unpack.js';
import { craftLayer, type LayerEntry, readOciLayout, unpackSandbox } from './helpers/layers.js';
import { errorMessage, PROJECT, TestEnv } from './helpers/runbox.js';
import { craftedLayer, craftImage, startTinyRegistry } from './helpers/tiny-registry.js';

const PASSWD = `root:x:0:0:root:/root:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/sh
svc:x:998:998::/srv:/bin/false
`;
const GROUP = `root:x:0:
wheel:x:10:root,alice
staff:x:50:
alice:x:1000:
docker:x:999:alice,svc
svc:x:998:
`;

function image(config: ImageConfig['config']): ImageConfig {
  return { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config };
}

async function rootfsWithAccounts(t: Parameters<typeof unpackSandbox>[0]): Promise<string> {
  const box = unpackSandbox(t);
  await unpackLayers(
    [
      await craftLayer([
        { header: { name: 'etc/', type: 'directory', mode: 0o755 } },
        { header: { name: 'etc/passwd', type: 'file', mode: 0o644 }, content: PASSWD },
        { header: { name: 'etc/group', type: 'file', mode: 0o644 }, content: GROUP },
      ]),
    ],
    box.rootfs,
  );
  return box.rootfs;
}

test('users resolve against the image /etc/passwd and /etc/group', async (t) => {
  const rootfs = await rootfsWithAccounts(t);
  const cases: Array<[string, object]> = [
    ['', { uid: 0, gid: 0, additionalGids: [10], home: '/root' }],
    ['root', { uid: 0, gid: 0, additionalGids: [10], home: '/root' }],
    ['alice', { uid: 1000, gid: 1000, additionalGids: [10, 999], home: '/home/alice' }],
    ['1000', { uid: 1000, gid: 1000, additionalGids: [10, 999], home: '/home/alice' }],
    ['svc', { uid: 998, gid: 998, additionalGids: [999], home: '/srv' }],
    ['alice:staff', { uid: 1000, gid: 50, home: '/home/alice' }],
    ['alice:77', { uid: 1000, gid: 77, home: '/home/alice' }],
    ['1000:50', { uid: 1000, gid: 50, home: '/home/alice' }],
    ['4242', { uid: 4242, gid: 0, home: '/' }],
    ['4242:4343', { uid: 4242, gid: 4343, home: '/' }],
    ['4242:staff', { uid: 4242, gid: 50, home: '/' }],
  ];
  for (const [spec, expected] of cases) t.deepEqual(await resolveUser(rootfs, spec), expected, spec);
  await t.throwsAsync(resolveUser(rootfs, 'bob'), { message: 'user "bob" is not in the image\'s /etc/passwd' });
  await t.throwsAsync(resolveUser(rootfs, 'alice:nope'), { message: 'group "nope" is not in the image\'s /etc/group' });
  await t.throwsAsync(resolveUser(rootfs, 'a:b:c'), { message: /is not user, user:group, uid or uid:gid/ });
});

test('the user databases are read inside the rootfs: an /etc symlinked out is not followed to the host', async (t) => {
  const box = unpackSandbox(t);
  await unpackLayers([await craftLayer([{ header: { name: 'etc', type: 'symlink', linkname: '../../../../../../etc' } }])], box.rootfs);
  t.deepEqual(await resolveUser(box.rootfs, '0'), { uid: 0, gid: 0, home: '/' });
  await t.throwsAsync(resolveUser(box.rootfs, 'root'), { message: /not in the image's \/etc\/passwd/ });
});

test('entrypoint, cmd, env, working dir, user and labels become the process and annotations', async (t) => {
  const rootfs = await rootfsWithAccounts(t);
  const config = image({
    Entrypoint: ['/bin/server', '--config'],
    Cmd: ['/etc/server.conf'],
    Env: ['LANG=C.UTF-8', 'MODE=prod'],
    WorkingDir: '/srv/app',
    User: 'alice',
    Labels: { 'org.opencontainers.image.source': 'https://example.invalid/src', 'org.opencontainers.image.version': '1.2' },
    StopSignal: 'SIGQUIT',
  });
  const spec = await specFromImageConfig(config, rootfs);
  t.deepEqual(spec.process?.args, ['/bin/server', '--config', '/etc/server.conf']);
  t.deepEqual(spec.process?.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/home/alice', 'LANG=C.UTF-8', 'MODE=prod']);
  t.is(spec.process?.cwd, '/srv/app');
  t.deepEqual(spec.process?.user, { uid: 1000, gid: 1000, additionalGids: [10, 999] });
  t.false(spec.process?.terminal);
  t.deepEqual(spec.annotations, {
    'org.opencontainers.image.source': 'https://example.invalid/src',
    'org.opencontainers.image.version': '1.2',
    [STOP_SIGNAL_ANNOTATION]: 'SIGQUIT',
  });
  t.deepEqual(spec.root, { path: 'rootfs', readonly: false });
  t.truthy(spec.linux?.namespaces?.length, 'built on the default spec');

  const overridden = await specFromImageConfig(config, rootfs, {
    args: ['--help'],
    env: ['MODE=dev', 'EXTRA=1'],
    cwd: '/tmp',
    user: '1000:50',
    terminal: true,
  });
  t.deepEqual(overridden.process?.args, ['/bin/server', '--config', '--help'], 'args replace cmd, the entrypoint stays');
  t.deepEqual(overridden.process?.env, [
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'HOME=/home/alice',
    'TERM=xterm',
    'LANG=C.UTF-8',
    'MODE=dev',
    'EXTRA=1',
  ]);
  t.is(overridden.process?.cwd, '/tmp');
  t.deepEqual(overridden.process?.user, { uid: 1000, gid: 50 });
  t.true(overridden.process?.terminal);

  const newEntrypoint = await specFromImageConfig(config, rootfs, { entrypoint: ['/bin/sh', '-c'] });
  t.deepEqual(newEntrypoint.process?.args, ['/bin/sh', '-c'], "a new entrypoint drops the image's cmd");
});

test("the image's PATH is kept, and an image with no command needs one", async (t) => {
  const rootfs = await rootfsWithAccounts(t);
  const spec = await specFromImageConfig(image({ Cmd: ['sh'], Env: ['PATH=/opt/bin', 'HOME=/data'] }), rootfs);
  t.deepEqual(spec.process?.env, ['PATH=/opt/bin', 'HOME=/data']);
  t.is(spec.process?.cwd, '/');
  t.deepEqual(spec.process?.user, { uid: 0, gid: 0, additionalGids: [10] });
  t.is(spec.annotations, undefined);
  await t.throwsAsync(specFromImageConfig(image({ Env: [] }), rootfs), { message: 'the image has neither Entrypoint nor Cmd: give a command' });
  t.deepEqual((await specFromImageConfig(image({}), rootfs, { args: ['true'] })).process?.args, ['true']);
});

test('the busybox fixture image unpacks to a rootfs that runbox runs', async (t) => {
  const env = new TestEnv(t);
  const { config, layers } = readOciLayout(join(PROJECT, 'fixtures', 'busybox', 'build', 'oci'));
  const bundle = join(env.dir, 'image-bundle');
  mkdirSync(bundle);
  await unpackLayers(layers, join(bundle, 'rootfs'));
  const spec = await specFromImageConfig(config, join(bundle, 'rootfs'), {
    args: ['-c', 'echo "$(id -u):$(id -g) $(pwd) $PATH"; cat /etc/hostname; ls -l /bin/sh'],
    entrypoint: ['/bin/sh'],
    user: 'daemon',
    cwd: '/tmp',
  });
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  const result = await env.run(['run', '--bundle', bundle, env.id('image')]);
  t.is(result.code, 0, result.stderr);
  const [first, hostname, shell] = result.stdout.trim().split('\n');
  t.is(first, '1:1 /tmp /usr/sbin:/usr/bin:/sbin:/bin');
  t.is(hostname, 'runbox');
  t.regex(shell ?? '', /\/bin\/sh -> \/bin\/busybox$/);
});

test('the user databases are read only when they are regular files of a bounded size', async (t) => {
  const cases: Array<[string, LayerEntry, RegExp]> = [
    ['a character device', { header: { name: 'etc/passwd', type: 'character-device', devmajor: 1, devminor: 5, mode: 0o644 } }, /^the image's \/etc\/passwd is not a regular file$/],
    ['a directory', { header: { name: 'etc/passwd/', type: 'directory', mode: 0o755 } }, /^the image's \/etc\/passwd is not a regular file$/],
    ['a symlink to a device', { header: { name: 'etc/passwd', type: 'symlink', linkname: '/dev/zero' } }, /^the image's \/etc\/passwd is not a regular file$/],
    ['5 MiB', { header: { name: 'etc/passwd', type: 'file', mode: 0o644 }, content: Buffer.alloc(5 * 1024 * 1024, 'x') }, /^the image's \/etc\/passwd is larger than 4194304 bytes$/],
    ['a device group database', { header: { name: 'etc/group', type: 'character-device', devmajor: 1, devminor: 5, mode: 0o644 } }, /^the image's \/etc\/group is not a regular file$/],
  ];
  for (const [what, entry, message] of cases) {
    const box = unpackSandbox(t);
    const devices = [{ header: { name: 'dev/', type: 'directory', mode: 0o755 } }, { header: { name: 'dev/zero', type: 'character-device', devmajor: 1, devminor: 5, mode: 0o666 } }] satisfies LayerEntry[];
    await unpackLayers([await craftLayer([{ header: { name: 'etc/', type: 'directory', mode: 0o755 } }, ...devices, entry])], box.rootfs);
    await t.throwsAsync(resolveUser(box.rootfs, '0'), { message }, what);
  }
});

test('bundle of an image whose /etc/passwd is a fifo fails at once, and holds up no prune', async (t) => {
  const env = new TestEnv(t);
  const registry = await startTinyRegistry(t);
  const store = join(env.dir, 'store');
  for (const name of ['passwd', 'group']) {
    const image = craftImage(registry, `fifo-${name}`, '1', [
      await craftedLayer([
        { header: { name: 'etc/', type: 'directory', mode: 0o755 } },
        { header: { name: 'etc/passwd', type: 'file', mode: 0o644 }, content: PASSWD },
        { header: { name: `etc/${name}`, type: 'fifo', mode: 0o644 } },
      ]),
    ]);
    const bundle = join(env.dir, `bundle-${name}`);
    const made = await env.run(['bundle', '-q', '--store', store, '--image', image.ref, bundle], { timeout: 30_000 });
    t.is(made.code, 1, made.stderr);
    t.is(errorMessage(made.stderr), `image ${image.ref}: the image's /etc/${name} is not a regular file`);
    t.false(existsSync(bundle));
  }
  const pruned = await env.run(['image', 'prune', '-q', '--store', store], { timeout: 30_000 });
  t.is(pruned.code, 0, pruned.stderr);
});
