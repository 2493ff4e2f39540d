// config.json's linux.seccomp seen from inside the container: containerd's default profile (as `ctr run --seccomp`
// generates it) and hand-written denials, with the emulated driver and in a microVM (qemu, TCG).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { DRIVER_ANNOTATION } from '../src/drivers/drivers.js';
import type { Spec } from '../src/oci/spec.js';
import { PrivateContainerd } from './helpers/containerd.js';
import { errorMessage, processesMentioning, PROJECT, TestEnv } from './helpers/runbox.js';

function inVm(spec: Spec): void {
  spec.annotations = { ...spec.annotations, [DRIVER_ANNOTATION]: 'qemu', 'io.runbox.qemu.accel': 'tcg' };
}

const DRIVERS: Array<{ name: string; edit: (spec: Spec) => void }> = [
  { name: 'emulated', edit: () => {} },
  { name: 'qemu', edit: inVm },
];

async function runIn(t: ExecutionContext, edit: (spec: Spec) => void, script: string) {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', script];
    edit(spec);
  });
  return env.run(['run', '--bundle', bundle, env.id()]);
}

const PROFILE_WITH_DENIALS = {
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: [
    // mkdir with the default errno (EPERM), rmdir with an errno of its own (EDQUOT).
    { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' },
    { names: ['rmdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 122 },
    // chmod only when the mode is 0700 (busybox chmod calls chmod(2)).
    { names: ['chmod'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 0o700, op: 'SCMP_CMP_EQ' }] },
  ],
};

const DENIALS_SCRIPT = [
  'mkdir /made 2>&1',
  'rmdir /tmp 2>&1',
  'touch /f; chmod 700 /f 2>&1; chmod 755 /f && echo "755 allowed"',
  'grep -E "^Seccomp(_filters)?:" /proc/self/status | tr -d "\\t"',
].join('; ');

for (const driver of DRIVERS) {
  test(`${driver.name}: hand-written denials: the default errno, an errnoRet of its own, an args comparison`, async (t) => {
    const result = await runIn(t, (spec) => {
      spec.linux!.seccomp = PROFILE_WITH_DENIALS;
      driver.edit(spec);
    }, DENIALS_SCRIPT);
    t.is(result.code, 0, result.stderr);
    t.deepEqual(result.stdout.split('\n').map((line) => line.trim()), [
      "mkdir: can't create directory '/made': Operation not permitted",
      "rmdir: '/tmp': Disk quota exceeded",
      'chmod: /f: Operation not permitted',
      '755 allowed',
      'Seccomp:2',
      'Seccomp_filters:1',
      '',
    ]);
  });
}

test('emulated: an exec\'d process gets the container\'s filter too', async (t) => {
  const env = new TestEnv(t);
  const { id } = await env.running(['sleep', '60'], (spec) => {
    spec.linux!.seccomp = PROFILE_WITH_DENIALS;
  });
  const exec = await env.run(['exec', id, 'sh', '-c', 'mkdir /in-exec 2>&1; grep "^Seccomp:" /proc/self/status']);
  t.is(exec.code, 0, exec.stderr);
  t.is(exec.stdout, "mkdir: can't create directory '/in-exec': Operation not permitted\nSeccomp:\t2\n");
});

/** native/probes/syscall-probe.c built into the bundle's rootfs as /probe. */
function withProbe(bundle: string): void {
  const built = spawnSync('gcc', ['-static', '-O2', '-o', join(bundle, 'rootfs', 'probe'), join(PROJECT, 'native', 'probes', 'syscall-probe.c')], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`gcc: ${built.stderr}`);
}

test('emulated: a default action that denies; syscalls newer than every name in the profile get ENOSYS, as with runc', async (t) => {
  const env = new TestEnv(t);
  // What the agent's last steps and the static probe need; close_range (436) is the newest syscall named.
  const allowed = [
    'execve', 'exit_group', 'exit', 'write', 'brk', 'arch_prctl', 'set_tid_address', 'set_robust_list', 'rseq',
    'prlimit64', 'readlink', 'getrandom', 'mprotect', 'mmap', 'munmap', 'newfstatat', 'fstat', 'uname', 'prctl',
    'close', 'close_range', 'getpid', 'futex',
  ];
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['/probe', '39', '84,0', '437', '450'];
    spec.process!.noNewPrivileges = true;
    spec.linux!.seccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      syscalls: [{ names: allowed, action: 'SCMP_ACT_ALLOW' }, { names: ['no_such_syscall'], action: 'SCMP_ACT_ALLOW' }],
    };
  });
  withProbe(bundle);
  const result = await env.run(['run', '--bundle', bundle, env.id()]);
  t.is(result.code, 0, result.stderr);
  // getpid allowed; rmdir (84) not named: EPERM; openat2 (437) and set_mempolicy_home_node (450): ENOSYS.
  t.is(result.stdout, '39 errno=0\n84 errno=1\n437 errno=38\n450 errno=38\n');
});

test('containerd\'s default profile (ctr run --seccomp) applied by the shim: unshare(2) is denied', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const script = 'unshare -U true 2>&1; echo "unshare=$?"; linux32 uname -m; grep "^Seccomp:" /proc/self/status';
  const plain = await containerd.run(containerd.id('plain'), ['sh', '-c', script], ['--rm']);
  t.is(plain.code, 0, plain.stderr);
  t.regex(plain.stdout, /^unshare=0\n/, 'without the profile a user namespace can be made');
  for (const [name, flags] of [['emulated', []], ['qemu', ['--annotation', `${DRIVER_ANNOTATION}=qemu`]]] as const) {
    const result = await containerd.run(containerd.id(name), ['sh', '-c', script], ['--rm', '--seccomp', ...flags]);
    t.is(result.code, 0, `${name}: ${result.stderr}`);
    // personality(PER_LINUX32) passes the profile's args comparison; unshare is not in its allow list.
    t.is(result.stdout, 'unshare: unshare(0x10000000): Operation not permitted\nunshare=1\ni686\nSeccomp:\t2\n', name);
  }
});

test('a profile runbox cannot apply is refused at create, naming the field, and nothing is left', async (t) => {
  const env = new TestEnv(t);
  const cases: Array<[unknown, RegExp]> = [
    [{ defaultAction: 'SCMP_ACT_SOMETIMES' }, /linux\.seccomp\.defaultAction: string SCMP_ACT_SOMETIMES is not a valid action for seccomp/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_Z80'] }, /string SCMP_ARCH_Z80 is not a valid arch for seccomp/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_EVERYTHING'] }, /seccomp flag SECCOMP_FILTER_FLAG_EVERYTHING is not known/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_KILL', errnoRet: 5 }] }, /syscalls\[0\]\.action: errnoRet is set but SCMP_ACT_KILL returns no errno/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }] }, /args\[0\]\.index must be a syscall argument index from 0 to 5/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_ABOUT' }] }] }, /string SCMP_CMP_ABOUT is not a valid operator for seccomp/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/agent.sock', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] }, /SCMP_ACT_NOTIFY is not supported by runbox/],
  ];
  for (const [seccomp, message] of cases) {
    const bundle = env.bundle((spec) => {
      spec.linux!.seccomp = seccomp;
    });
    const id = env.id();
    const result = await env.run(['create', '--bundle', bundle, id]);
    t.is(result.code, 1, JSON.stringify(seccomp));
    t.regex(errorMessage(result.stderr), message);
    t.is(result.stdout, '');
    t.deepEqual(processesMentioning(id), []);
  }
  t.is((await env.run(['list', '-q'])).stdout, '');
});
