import test from 'ava';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Mount, Spec } from '../src/oci/spec.js';
import { errorMessage, mountsUnder, processesMentioning, TestEnv } from './helpers/runbox.js';

const PROBE = [
  'echo "hostname=$(hostname)"',
  'echo "pid=$$"',
  'echo "id=$(id)"',
  'echo "cwd=$(pwd)"',
  'echo "greeting=$GREETING"',
  'echo "nofile=$(ulimit -n)"',
  'grep -E "^(CapEff|CapBnd|NoNewPrivs)" /proc/self/status | tr -d "\\t" | sed "s/:/=/"',
  'touch /rootfs-write 2>/dev/null && echo rootfs=writable || echo rootfs=readonly',
  'echo "masked=$(wc -c < /proc/timer_list)"',
  '(echo x > /proc/sys/kernel/domainname) 2>/dev/null && echo procsys=writable || echo procsys=readonly',
  'echo "devices=$(ls /dev | tr "\\n" " ")"',
].join('; ');

function facts(output: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of output.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) result[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return result;
}

test('config.json is applied inside the container: namespaces, user, env, cwd, rlimits, caps, paths', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.hostname = 'isolated-host';
    spec.root!.readonly = true;
    spec.process!.args = ['sh', '-c', PROBE];
    spec.process!.user = { uid: 1000, gid: 1001, additionalGids: [5, 65534] };
    spec.process!.env = ['PATH=/bin:/sbin:/usr/bin', 'GREETING=hi there'];
    spec.process!.cwd = '/tmp/work';
    spec.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 321, hard: 654 }];
    spec.process!.noNewPrivileges = true;
    spec.process!.capabilities = { bounding: ['CAP_KILL', 'CAP_CHOWN'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'], ambient: ['CAP_KILL'], inheritable: ['CAP_KILL'] };
    spec.mounts!.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=1777'] });
  });
  const result = await env.run(['run', '--bundle', bundle, env.id()]);
  t.is(result.code, 0, result.stderr);
  const f = facts(result.stdout);
  t.is(f.hostname, 'isolated-host');
  t.is(f.pid, '1', 'the program is pid 1 of its own pid namespace');
  t.regex(f.id!, /^uid=1000 gid=1001 groups=5\(tty\),65534\(nogroup\)|^uid=1000 gid=1001 groups=.*5.*65534/);
  t.is(f.cwd, '/tmp/work', 'a missing cwd is created');
  t.is(f.greeting, 'hi there');
  t.is(f.nofile, '321');
  t.is(f.CapEff, '0000000000000020', 'only CAP_KILL is effective');
  t.is(f.CapBnd, '0000000000000021', 'the bounding set is CAP_CHOWN and CAP_KILL');
  t.is(f.NoNewPrivs, '1');
  t.is(f.rootfs, 'readonly');
  t.is(f.masked, "0", "/proc/timer_list is masked (it holds 6 kB on the host)");
  t.is(f.procsys, 'readonly', '/proc/sys is read-only');
  for (const device of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm']) t.true(f.devices!.split(' ').includes(device), `/dev/${device}`);
});

test('a read-write rootfs can be written, and the host sees it in the bundle', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'echo data > /written && cat /written'];
  });
  const result = await env.run(['run', '--bundle', bundle, env.id()]);
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, 'data\n');
});

test('bind mounts from the bundle, read-only ones included', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'cat /data/file; echo more > /data/file 2>/dev/null && echo ro=no || echo ro=yes'];
    spec.mounts!.push({ destination: '/data', type: 'bind', source: 'hostdata', options: ['rbind', 'ro'] });
  });
  const dir = join(bundle, 'hostdata');
  (await import('node:fs')).mkdirSync(dir);
  writeFileSync(join(dir, 'file'), 'from the host\n');
  const result = await env.run(['run', '--bundle', bundle, env.id()]);
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, 'from the host\nro=yes\n');
});

test('a mount destination cannot lead out of the rootfs through a symlink', async (t) => {
  const env = new TestEnv(t);
  const outside = join(env.dir, 'outside');
  (await import('node:fs')).mkdirSync(outside);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['true'];
    spec.mounts!.push({ destination: '/escape/inner', type: 'tmpfs', source: 'tmpfs' });
  });
  (await import('node:fs')).symlinkSync(outside, join(bundle, 'rootfs', 'escape'));
  const result = await env.run(['run', '--bundle', bundle, env.id()]);
  // The destination resolves inside the rootfs, where the symlink's target does not exist: a clear error.
  t.is(result.code, 1);
  t.regex(result.stderr, /escape/);
  t.deepEqual((await import('node:fs')).readdirSync(outside), [], 'nothing was created outside the rootfs');
});

test('no namespace listed: the container shares each of the runtime\'s (runtime-spec), chrooted; its mounts go with it', async (t) => {
  const env = new TestEnv(t);
  const types = ['cgroup', 'ipc', 'mnt', 'net', 'pid', 'user', 'uts'];
  const { id, bundle } = await env.running(['sleep', '60'], (spec) => {
    spec.linux!.namespaces = [];
    delete spec.hostname;
    delete spec.linux!.maskedPaths;
    delete spec.linux!.readonlyPaths;
  });
  const pid = Number((await env.state(id)).pid);
  for (const type of types) t.is(readlinkSync(`/proc/${pid}/ns/${type}`), readlinkSync(`/proc/self/ns/${type}`), type);
  const exec = await env.run(['exec', id, 'sh', '-c', 'cat /etc/hostname; ls /proc/self/fd >/dev/null && echo proc-mounted']);
  t.is(exec.code, 0, exec.stderr);
  t.is(exec.stdout, 'runbox\nproc-mounted\n', 'an exec\'d process sees the container\'s rootfs and mounts');
  t.not(mountsUnder(join(bundle, 'rootfs')).length, 0, 'the mounts are in the runtime\'s mount namespace');
  t.is((await env.run(['delete', '--force', id])).code, 0);
  t.deepEqual(mountsUnder(join(bundle, 'rootfs')), [], 'delete took them away');
});

test('without a mount namespace, masked and read-only paths are refused as runc refuses them', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.linux!.namespaces = spec.linux!.namespaces!.filter((ns) => ns.type !== 'mount');
  });
  const id = env.id();
  const result = await env.run(['create', '--bundle', bundle, id]);
  t.is(result.code, 1);
  t.is(errorMessage(result.stderr), 'unable to restrict sys entries without a private MNT namespace');
  t.deepEqual(mountsUnder(join(bundle, 'rootfs')), []);
});

test('a host directory cannot be bound over /proc (runc: "not of type proc") or /sys, nor anything inside /proc but lxcfs\'s files', async (t) => {
  const env = new TestEnv(t);
  const cases: Array<[Mount, RegExp | undefined]> = [
    [{ destination: '/proc', type: 'bind', source: '/tmp', options: ['rbind'] }, /mount \/tmp on \/proc: "\/proc" cannot be mounted because it is not of type proc$/],
    [{ destination: '/x/../proc/', type: 'bind', source: '/tmp', options: ['rbind'] }, /"\/proc" cannot be mounted because it is not of type proc$/],
    [{ destination: '/sys', type: 'bind', source: '/tmp', options: ['rbind'] }, /mount \/tmp on \/sys: "\/sys" cannot be mounted because it is not of type sysfs$/],
    [{ destination: '/proc/kcore', type: 'bind', source: '/etc/hostname', options: ['bind'] }, /"\/proc\/kcore" cannot be mounted because it is inside \/proc$/],
    [{ destination: '/proc/uptime', type: 'bind', source: '/etc/hostname', options: ['bind'] }, undefined],
    [{ destination: '/sys', type: 'bind', source: '/sys', options: ['rbind'] }, undefined],
  ];
  for (const [mount, error] of cases) {
    const bundle = env.bundle((spec) => {
      spec.process!.args = ['true'];
      spec.mounts!.push(mount);
    });
    const result = await env.run(['run', '--bundle', bundle, env.id()]);
    if (!error) {
      t.is(result.code, 0, `${mount.destination}: ${result.stderr}`);
      continue;
    }
    t.is(result.code, 1, mount.destination);
    t.regex(errorMessage(result.stderr), error);
  }
  t.is((await env.run(['list', '-q'])).stdout, '');
});

test('an AppArmor profile or SELinux labels are refused where the kernel that would apply them has none (this host, a microVM)', async (t) => {
  const env = new TestEnv(t);
  const hostHasAppArmor = existsSync('/sys/module/apparmor/parameters/enabled') && readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').startsWith('Y');
  const hostHasSelinux = existsSync('/sys/fs/selinux/enforce');
  const cases: Array<[string, (spec: Spec) => void, RegExp, boolean]> = [
    ['apparmorProfile', (spec) => (spec.process!.apparmorProfile = 'runbox-test'), /AppArmor profile "runbox-test" cannot be applied: AppArmor is not enabled on this host$/, hostHasAppArmor],
    ['selinuxLabel', (spec) => (spec.process!.selinuxLabel = 'system_u:system_r:container_t:s0'), /selinux label is specified in config, but selinux is disabled or not supported: SELinux is not enabled on this host$/, hostHasSelinux],
    ['mountLabel', (spec) => (spec.linux!.mountLabel = 'system_u:object_r:container_file_t:s0'), /linux\.mountLabel "system_u:object_r:container_file_t:s0" cannot be applied: selinux is disabled or not supported: SELinux is not enabled on this host$/, hostHasSelinux],
  ];
  for (const [field, edit, error, hostHasIt] of cases) {
    for (const vm of [false, true]) {
      const bundle = env.bundle((spec) => {
        edit(spec);
        if (vm) spec.annotations = { ...spec.annotations, 'io.runbox.driver': 'qemu', 'io.runbox.qemu.accel': 'tcg' };
      });
      const id = env.id();
      const result = await env.run(['create', '--bundle', bundle, id]);
      if (!vm && hostHasIt) {
        t.log(`${field}: this host has it, so it is applied: not refused`);
        await env.run(['delete', '--force', id]);
        continue;
      }
      t.is(result.code, 1, `${field} (${vm ? 'qemu' : 'emulated'})`);
      const message = errorMessage(result.stderr);
      if (vm) t.regex(message, /the qemu driver's guest has no (AppArmor|SELinux) policy loaded$/);
      else t.regex(message, error);
      t.deepEqual(processesMentioning(id), [], 'nothing is left running');
    }
  }
  t.is((await env.run(['list', '-q'])).stdout, '');
});

test('a time namespace, which runbox cannot make, is refused rather than dropped', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.linux!.namespaces!.push({ type: 'time' });
  });
  const result = await env.run(['create', '--bundle', bundle, env.id()]);
  t.is(result.code, 1);
  t.is(errorMessage(result.stderr), 'namespace type "time" is not supported');
});
