// linux.cgroupsPath and linux.resources with the emulated driver: read back from the host's cgroup files of the
// container's processes, seen at work (a fork bomb, a memory hog), changed by `runbox update`, gone after delete.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { cgroupDir, cgroupsLeft, cgroupValue, memoryLimit, ownCgroup, UNIFIED } from './helpers/cgroups.js';
import type { LinuxResources } from '../src/oci/linux-resources.js';
import type { Linux, Spec } from '../src/oci/spec.js';
import { errorMessage, processesMentioning, TestEnv } from './helpers/runbox.js';

const MiB = 1024 * 1024;

async function pidOf(env: TestEnv, id: string): Promise<number> {
  return (await env.state(id)).pid as number;
}

test('resources are written to the cgroups named by an absolute cgroupsPath; execs join them; delete removes them', async (t) => {
  const env = new TestEnv(t);
  const parent = `/runbox-test-${env.id('cg')}`;
  t.teardown(() => cgroupsLeft(parent).forEach((dir) => t.log(`left behind: ${dir}`)));
  const { id } = await env.running(['sleep', '1000'], (spec) => {
    spec.linux!.cgroupsPath = `${parent}/ctr`;
    spec.linux!.resources = { ...spec.linux!.resources, memory: { limit: 64 * MiB }, pids: { limit: 25 }, cpu: { shares: 512, cpus: '0' } };
  });
  const pid = await pidOf(env, id);
  t.is(cgroupDir(pid, 'memory'), UNIFIED ? `/sys/fs/cgroup${parent}/ctr` : `/sys/fs/cgroup/memory${parent}/ctr`);
  t.is(memoryLimit(pid), String(64 * MiB));
  t.is(cgroupValue(pid, 'pids', 'pids.max'), '25');
  t.is(cgroupValue(pid, 'cpu', UNIFIED ? 'cpu.weight' : 'cpu.shares'), UNIFIED ? '20' : '512');
  t.is(cgroupValue(pid, 'cpuset', 'cpuset.cpus'), '0');

  // In the container's cgroup namespace an exec'd process sees itself at the root of every hierarchy only if it joined.
  const exec = await env.run(['exec', id, '--', 'cat', '/proc/self/cgroup']);
  t.is(exec.code, 0, exec.stderr);
  const joined = exec.stdout.trim().split('\n').filter((line) => /:(memory|pids|cpu)(,|:)|^0::/.test(line));
  t.true(joined.length > 0, exec.stdout);
  for (const line of joined) t.regex(line, /:\/$/, `exec joined the container's cgroup: ${exec.stdout}`);

  t.is((await env.run(['delete', '--force', id])).code, 0);
  t.deepEqual(cgroupsLeft(parent), [], 'the cgroups and the parent runbox made are removed');
});

test('without cgroupsPath a container gets runbox/ID under the runtime\'s own cgroup, a relative path goes there too', async (t) => {
  const env = new TestEnv(t);
  const own = ownCgroup('memory');
  const first = await env.running(['sleep', '1000']);
  t.is(cgroupDir(await pidOf(env, first.id), 'memory'), join('/sys/fs/cgroup', UNIFIED ? '' : 'memory', own, 'runbox', first.id));
  const relative = `rel-${env.id('cg')}`;
  const second = await env.running(['sleep', '1000'], (spec) => {
    spec.linux!.cgroupsPath = `${relative}/../${relative}/ctr`;
  });
  t.is(cgroupDir(await pidOf(env, second.id), 'memory'), join('/sys/fs/cgroup', UNIFIED ? '' : 'memory', own, relative, 'ctr'));
  for (const { id } of [first, second]) t.is((await env.run(['delete', '--force', id])).code, 0);
  t.deepEqual(cgroupsLeft(join(own, 'runbox', first.id)), []);
  t.deepEqual(cgroupsLeft(join(own, relative)), []);
});

test('a fork bomb stops at pids.limit', async (t) => {
  const env = new TestEnv(t);
  const bomb = '(i=0; while [ $i -lt 50 ]; do sleep 1000 & i=$((i+1)); done) 2>/dev/null; exec sleep 1000';
  const { id } = await env.running(['sh', '-c', bomb], (spec) => {
    spec.linux!.resources = { ...spec.linux!.resources, pids: { limit: 8 } };
  });
  const pid = await pidOf(env, id);
  let events = '';
  for (let i = 0; i < 100 && !/max [1-9]/.test(events); i++) {
    await sleep(100);
    events = cgroupValue(pid, 'pids', 'pids.events');
  }
  t.regex(events, /max [1-9]/, 'forks were refused at the limit');
  const ps = await env.run(['ps', '--format', 'json', id]);
  t.is(ps.code, 0, ps.stderr);
  const pids = JSON.parse(ps.stdout) as number[];
  t.true(pids.length <= 8 && pids.length > 1, `${pids.length} processes`);
  t.true(Number(cgroupValue(pid, 'pids', 'pids.current')) <= 8);
});

test('a memory hog over memory.limit is killed by the OOM killer', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo "dd=$?"'];
    spec.linux!.resources = { ...spec.linux!.resources, memory: { limit: 16 * MiB } };
  });
  const result = await env.run(['run', '--bundle', bundle, env.id()]);
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, 'dd=137\n', 'dd ended by SIGKILL');
});

test('a create that fails leaves no cgroup behind, whatever failed', async (t) => {
  const env = new TestEnv(t);
  const cases: Array<{ edit: (linux: Linux) => void; args?: string[]; error: RegExp }> = [
    { edit: (linux) => (linux.resources = { ...linux.resources, cpu: { cpus: '999' } }), error: /container c-[^:]+: linux\.resources\.cpu\.cpus: cgroup: write 999 to .*cpuset\.cpus/ },
    { edit: () => {}, args: ['/no/such/program'], error: /no such file or directory/ },
    { edit: (linux) => (linux.resources = { ...linux.resources, memory: { limit: 'lots' as unknown as number } }), error: /linux\.resources\.memory\.limit must be an integer/ },
  ];
  for (const { edit, args, error } of cases) {
    const parent = `/runbox-test-${env.id('cg')}`;
    const bundle = env.bundle((spec) => {
      spec.linux!.cgroupsPath = `${parent}/ctr`;
      edit(spec.linux!);
      if (args) spec.process!.args = args;
    });
    const id = env.id();
    const result = await env.run(['create', '--bundle', bundle, id]);
    t.is(result.code, 1);
    t.regex(result.stderr, error);
    t.deepEqual(cgroupsLeft(parent), [], result.stderr);
    t.is((await env.run(['list', '-q'])).stdout, '');
  }
});

test('a cgroupsPath that other processes are in is refused, and nothing is left of the attempt', async (t) => {
  const env = new TestEnv(t);
  const path = `/runbox-test-${env.id('cg')}`;
  const busy = join('/sys/fs/cgroup', UNIFIED ? '' : 'pids', path);
  mkdirSync(busy);
  const squatter = spawn('sleep', ['1000'], { stdio: 'ignore' });
  t.teardown(async () => {
    squatter.kill('SIGKILL');
    await once(squatter, 'exit');
    rmdirSync(busy);
  });
  writeFileSync(join(busy, 'cgroup.procs'), String(squatter.pid));
  const bundle = env.bundle((spec) => {
    spec.linux!.cgroupsPath = path;
  });
  const result = await env.run(['create', '--bundle', bundle, env.id()]);
  t.is(result.code, 1);
  t.regex(result.stderr, new RegExp(`the cgroup ${path} is not empty`));
  t.deepEqual(cgroupsLeft(path), [busy], 'only the squatter\'s cgroup is there');
  t.is(readFileSync(join(busy, 'cgroup.procs'), 'utf8').trim(), String(squatter.pid));
});

test('runbox update changes the limits of a running container; bad values are refused', async (t) => {
  const env = new TestEnv(t);
  const { id } = await env.running(['sleep', '1000'], (spec) => {
    spec.linux!.resources = { ...spec.linux!.resources, memory: { limit: 64 * MiB }, pids: { limit: 20 } };
  });
  const pid = await pidOf(env, id);
  const updated = await env.run(['update', '--memory', '96m', '--pids-limit', '12', id]);
  t.is(updated.code, 0, updated.stderr);
  t.is(memoryLimit(pid), String(96 * MiB));
  t.is(cgroupValue(pid, 'pids', 'pids.max'), '12');

  const file = join(env.dir, 'resources.json');
  writeFileSync(file, JSON.stringify({ memory: { limit: 48 * MiB }, cpu: { quota: 50000, period: 100000 } }));
  const fromFile = await env.run(['update', '-r', file, id]);
  t.is(fromFile.code, 0, fromFile.stderr);
  t.is(memoryLimit(pid), String(48 * MiB));
  t.is(cgroupValue(pid, 'cpu', UNIFIED ? 'cpu.max' : 'cpu.cfs_quota_us'), UNIFIED ? '50000 100000' : '50000');

  const bad = await env.run(['update', '--memory', 'plenty', id]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, new RegExp(`container ${id}: update: --memory: invalid size \\\\?"plenty`));
  const refused = await env.run(['update', '--cpuset-cpus', '999', id]);
  t.is(refused.code, 1);
  t.regex(refused.stderr, new RegExp(`container ${id}: update: .*cpuset\\.cpus`));

  t.is((await env.run(['kill', id, 'KILL'])).code, 0);
  await env.waitForStatus(id, 'stopped');
  const stopped = await env.run(['update', '--memory', '32m', id]);
  t.is(stopped.code, 1);
  t.regex(stopped.stderr, /cannot update a stopped container/);
});

test('features says which cgroups runbox applies, per driver', async (t) => {
  const env = new TestEnv(t);
  const result = await env.run(['features']);
  t.is(result.code, 0, result.stderr);
  const features = JSON.parse(result.stdout);
  t.deepEqual(features.linux.cgroup, { v1: true, v2: true, systemd: false, systemdUser: false });
  t.regex(features.annotations['io.runbox.driver.emulated.cgroups'], /linux\.cgroupsPath; memory limit.*pids limit; blockIO; hugepageLimits; network; rdma; unified \(v2\); device rules \(v1 devices controller, v2 eBPF device program\); OOM events; update/);
  t.regex(features.annotations['io.runbox.driver.qemu.cgroups'], /linux\.cgroupsPath; memory limit.*pids limit; blockIO; hugepageLimits; network; rdma; unified \(v2\); device rules \(v1 devices controller, v2 eBPF device program\); OOM events; update/);
});

test('memory limits as runc reads them: 0 sets none, one below what the init needs fails naming it, beyond int64 is refused', async (t) => {
  const env = new TestEnv(t);
  const { id } = await env.running(['sleep', '1000'], (spec) => {
    spec.linux!.resources = { ...spec.linux!.resources, memory: { limit: 0, reservation: 0 } };
  });
  t.not(memoryLimit(await pidOf(env, id)), '0', 'a limit of 0 is no limit');
  const cases: Array<[number, RegExp]> = [
    [1, /^container c-[^:]+: memory limit of 1 bytes: the OOM killer ended the init process before it was ready for the hooks: the limit is below what the container needs to start$/],
    [4096, /memory limit of 4096 bytes: the OOM killer ended the init process/],
    [1e19, /^linux\.resources\.memory\.limit 10000000000000000000 is out of range: it must be an int64$/],
  ];
  for (const [limit, error] of cases) {
    const parent = `/runbox-test-${env.id('cg')}`;
    const bundle = env.bundle((spec) => {
      spec.linux!.cgroupsPath = `${parent}/ctr`;
      spec.linux!.resources = { ...spec.linux!.resources, memory: { limit } };
    });
    const result = await env.run(['create', '--bundle', bundle, env.id()]);
    t.is(result.code, 1, String(limit));
    t.regex(errorMessage(result.stderr), error);
    t.deepEqual(cgroupsLeft(parent), []);
  }
});

/** The first whole disk of the host (MAJ:MIN), for blockIO's per-device settings. */
function diskDevice(): string {
  const disk = readdirSync('/sys/block').find((name) => !/^(loop|ram|zram)/.test(name));
  return readFileSync(`/sys/block/${disk}/dev`, 'utf8').trim();
}

test('blockIO throttles and device rules are applied where the host has their controllers', async (t) => {
  const env = new TestEnv(t);
  const [major, minor] = diskDevice().split(':').map(Number) as [number, number];
  const edit = (spec: Spec) => {
    spec.linux!.devices = [...(spec.linux!.devices ?? []), { path: '/dev/kmsg', type: 'c', major: 1, minor: 11, fileMode: 0o644 }];
    spec.linux!.resources = {
      ...spec.linux!.resources,
      blockIO: { throttleReadBpsDevice: [{ major, minor, rate: 1048576 }], throttleWriteIOPSDevice: [{ major, minor, rate: 100 }] },
      devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }],
    };
  };
  if (UNIFIED) {
    // io.max on cgroup v2; the device rules there are the eBPF device program's (the test above).
    const { id } = await env.running(['sleep', '1000'], edit);
    t.regex(cgroupValue(await pidOf(env, id), 'io', 'io.max'), new RegExp(`^${major}:${minor} rbps=1048576 wbps=max riops=max wiops=100$`, 'm'));
    return;
  }
  const { id } = await env.running(['sleep', '1000'], edit);
  const pid = await pidOf(env, id);
  t.is(cgroupValue(pid, 'blkio', 'blkio.throttle.read_bps_device'), `${major}:${minor} 1048576`);
  t.is(cgroupValue(pid, 'blkio', 'blkio.throttle.write_iops_device'), `${major}:${minor} 100`);
  const list = cgroupValue(pid, 'devices', 'devices.list').split('\n');
  t.false(list.includes('a *:* rwm'), 'not every device is allowed');
  t.deepEqual(list.slice(0, 2), ['c 10:229 rw', 'c 1:3 rwm'], 'the rules in the listed order (runtime-spec), then runc\'s always-allowed devices');
  const exec = await env.run(['exec', id, 'sh', '-c', 'head -c 1 /dev/kmsg 2>&1; echo reached > /dev/null && echo null-ok']);
  t.is(exec.stdout, 'head: /dev/kmsg: Operation not permitted\nnull-ok\n', 'a device the rules deny cannot be opened; /dev/null can');
});

test('a config.json without device rules gets runc\'s always-allowed devices and no other', async (t) => {
  const env = new TestEnv(t);
  const { id } = await env.running(['sleep', '1000'], (spec) => {
    // Reading /dev/kmsg needs CAP_SYSLOG: without it the capabilities, not the rules, would deny.
    for (const set of ['bounding', 'effective', 'permitted'] as const) spec.process!.capabilities![set]!.push('CAP_SYSLOG');
    spec.linux!.devices = [...(spec.linux!.devices ?? []), { path: '/dev/kmsg', type: 'c', major: 1, minor: 11, fileMode: 0o644 }];
    delete spec.linux!.resources;
  });
  if (!UNIFIED) t.false(cgroupValue(await pidOf(env, id), 'devices', 'devices.list').split('\n').includes('a *:* rwm'), 'not every device is allowed');
  const exec = await env.run(['exec', id, 'sh', '-c', 'head -c 1 /dev/kmsg 2>&1; head -c 1 /dev/zero | wc -c; echo > /dev/null && echo null-ok']);
  t.is(exec.stdout, 'head: /dev/kmsg: Operation not permitted\n1\nnull-ok\n', 'a device no rule allows cannot be opened; the default ones can');
});

/** A hybrid host's cgroup2 hierarchy (systemd's hybrid mode, this development machine), beside the v1 controllers. */
const HYBRID_CGROUP2 = '/sys/fs/cgroup/unified';
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** The environment that makes runbox apply device rules with an eBPF program here; undefined where it cannot. */
function ebpfDevicesEnv(): NodeJS.ProcessEnv | undefined {
  if (UNIFIED) return process.env;
  try {
    if (statfsSync(HYBRID_CGROUP2).type === CGROUP2_SUPER_MAGIC) return { ...process.env, RUNBOX_CGROUP2_DEVICES: HYBRID_CGROUP2 };
  } catch {
    // No cgroup2 hierarchy at all.
  }
  return undefined;
}

test('device rules as an eBPF device program (cgroup v2, or a hybrid host\'s cgroup2 mount): what they deny cannot be opened or written, what they allow can', async (t) => {
  const runEnv = ebpfDevicesEnv();
  if (!runEnv) {
    t.log('no cgroup2 hierarchy on this host: nothing to attach a device program to');
    t.pass();
    return;
  }
  const env = new TestEnv(t);
  const parent = `/runbox-test-${env.id('cg')}`;
  t.teardown(() => cgroupsLeft(parent).forEach((dir) => t.log(`left behind: ${dir}`)));
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '1000'];
    // mknod needs CAP_MKNOD, reading /dev/kmsg CAP_SYSLOG: without them the capabilities, not the rules, would deny.
    for (const set of ['bounding', 'effective', 'permitted'] as const) spec.process!.capabilities![set]!.push('CAP_MKNOD', 'CAP_SYSLOG');
    spec.linux!.devices = [...(spec.linux!.devices ?? []), { path: '/dev/kmsg', type: 'c', major: 1, minor: 11, fileMode: 0o644 }];
    spec.linux!.cgroupsPath = `${parent}/ctr`;
    spec.linux!.resources = {
      ...spec.linux!.resources,
      devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 11, access: 'r' }],
    };
  });
  const id = env.id();
  const run = await env.run(['run', '-d', '--bundle', bundle, id], { env: runEnv });
  t.is(run.code, 0, run.stderr);
  const pid = await pidOf(env, id);
  const script = [
    'head -c 1 /dev/kmsg > /dev/null && echo "kmsg read"',
    'echo x 2>&1 > /dev/kmsg',
    'echo > /dev/null && echo "null written"',
    'mknod /tmp/loop b 7 0 && echo "mknod allowed"',
    'head -c 1 /tmp/loop 2>&1',
    'mknod /tmp/zero c 1 5 && head -c 1 /tmp/zero | wc -c',
  ].join('; ');
  const exec = await env.run(['exec', id, 'sh', '-c', script]);
  t.is(exec.stdout, [
    'kmsg read',
    "sh: can't create /dev/kmsg: Operation not permitted",
    'null written',
    'mknod allowed',
    'head: /tmp/loop: Operation not permitted',
    '1',
    '',
  ].join('\n'), 'read-only /dev/kmsg, no block device but mknod, the default devices by their numbers');
  if (!UNIFIED) {
    // The program did it: the v1 devices controller of the container's cgroup still allows every device.
    t.true(cgroupValue(pid, 'devices', 'devices.list').split('\n').includes('a *:* rwm'), 'the v1 devices controller is not used');
    const unified = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((line) => line.startsWith('0::'));
    t.is(unified, `0::${parent}/ctr`, 'the init is in the container\'s cgroup2 directory');
  }
  t.is((await env.run(['delete', '--force', id])).code, 0);
  t.deepEqual(cgroupsLeft(parent), [], 'the cgroup2 directory goes with the others');
  if (!UNIFIED) {
    const wrong = await env.run(['create', '--bundle', bundle, env.id()], { env: { ...runEnv, RUNBOX_CGROUP2_DEVICES: env.dir } });
    t.is(wrong.code, 1);
    t.regex(errorMessage(wrong.stderr), new RegExp(`^container c-[^:]+: RUNBOX_CGROUP2_DEVICES=${env.dir} is not a cgroup2 mount$`));
    t.is((await env.run(['list', '-q'])).stdout, '');
  }
});

test('a setting whose cgroup controller the host lacks is refused, naming it; nothing is left', async (t) => {
  const env = new TestEnv(t);
  const mounted = (controller: string) => controller !== 'cgroup v2' && (UNIFIED
    ? readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').split(/\s+/).includes(controller)
    : existsSync(join('/sys/fs/cgroup', controller)));
  const cases: Array<[LinuxResources, string, RegExp]> = [
    [{ hugepageLimits: [{ pageSize: '2MB', limit: 2097152 }] }, 'hugetlb', /linux\.resources\.hugepageLimits: the cgroup controller hugetlb is not mounted here/],
    [{ network: { classID: 0x100001 } }, 'net_cls', UNIFIED ? /linux\.resources\.network needs the cgroup v1 net_cls and net_prio controllers/ : /linux\.resources\.network\.classID: the cgroup controller net_cls is not mounted here/],
    [{ rdma: { mlx5_1: { hcaHandles: 3 } } }, 'rdma', /linux\.resources\.rdma\.mlx5_1: the cgroup controller rdma is not mounted here/],
    [{ unified: { 'pids.max': '10' } }, UNIFIED ? 'pids' : 'cgroup v2', /linux\.resources\.unified needs cgroup v2: this host's cgroups are v1/],
  ];
  let refused = 0;
  for (const [resources, controller, error] of cases) {
    if (mounted(controller) && !(controller === 'net_cls' && UNIFIED)) continue;
    refused++;
    const parent = `/runbox-test-${env.id('cg')}`;
    const bundle = env.bundle((spec) => {
      spec.linux!.cgroupsPath = `${parent}/ctr`;
      spec.linux!.resources = { ...spec.linux!.resources, ...resources };
    });
    const id = env.id();
    const result = await env.run(['create', '--bundle', bundle, id]);
    t.is(result.code, 1, controller);
    t.regex(errorMessage(result.stderr), error);
    t.deepEqual(cgroupsLeft(parent), []);
    t.deepEqual(processesMentioning(id), []);
  }
  t.log(`${refused} of ${cases.length} settings refused on this host`);
  t.is((await env.run(['list', '-q'])).stdout, '');
});
