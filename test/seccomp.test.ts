// config.json's linux.seccomp seen from inside the container: containerd's default profile (as `ctr run --seccomp`
// generates it) and hand-written denials, with the emulated driver and in a microVM (qemu, TCG).
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { DRIVER_ANNOTATION } from '../src/drivers/drivers.js';
import type { Spec } from '../src/oci/spec.js';
import { PrivateContainerd } from './helpers/containerd.js';
import { errorMessage, processesLeftMentioning, processesMentioning, PROJECT, TestEnv } from './helpers/runbox.js';

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
    [{ defaultAction: 'SCMP_ACT_NOTIFY', listenerPath: '/run/agent.sock' }, /linux\.seccomp\.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] }, /linux\.seccomp\.listenerPath is not set: SCMP_ACT_NOTIFY needs a seccomp agent to notify/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: 'agent.sock', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] }, /linux\.seccomp\.listenerPath must be an absolute path, not "agent\.sock"/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/agent.sock', syscalls: [{ names: ['read', 'write'], action: 'SCMP_ACT_NOTIFY' }] }, /syscalls\[0\]: SCMP_ACT_NOTIFY cannot be used for the write syscall/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/agent.sock', syscalls: [{ names: ['sendmsg'], action: 'SCMP_ACT_NOTIFY' }] }, /SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall/],
    [{ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'] }, /SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a listener: a rule whose action is SCMP_ACT_NOTIFY/],
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
    t.deepEqual(await processesLeftMentioning(id), []);
  }
  t.is((await env.run(['list', '-q'])).stdout, '');
});

/** test/helpers/seccomp-agent.py listening at SOCKET, answering every notification with -errno; its log's entries. */
async function seccompAgent(t: ExecutionContext, dir: string, errno: number) {
  const socket = join(dir, 'seccomp-agent.sock');
  const log = join(dir, 'seccomp-agent.log');
  const agent = spawn('python3', [join(PROJECT, 'test', 'helpers', 'seccomp-agent.py'), socket, log, String(errno)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => agent.kill('SIGKILL'));
  const [line] = await Promise.race([once(agent.stdout!, 'data'), once(agent, 'exit').then(() => ['exited'])]);
  if (String(line).trim() !== 'ready') throw new Error(`the seccomp agent did not start: ${String(line)}`);
  const entries = (): Array<Record<string, any>> => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((text) => JSON.parse(text)) : []);
  return { socket, entries };
}

const EXDEV = 18;

test('emulated: SCMP_ACT_NOTIFY: the seccomp agent at listenerPath gets each process\'s listener with its state, and answers its syscalls', async (t) => {
  const env = new TestEnv(t);
  // A listenerPath longer than a sockaddr_un holds (108 bytes) is reached all the same.
  const dir = join(env.dir, 'a-directory-whose-name-makes-the-socket-path-longer-than-a-sockaddr-un-holds');
  mkdirSync(dir);
  const agent = await seccompAgent(t, dir, EXDEV);
  t.true(agent.socket.length > 108, agent.socket);
  const id = env.id();
  const bundle = env.bundle((spec) => {
    // The init's own answer goes to a file: run -d leaves it no reader.
    spec.process!.args = ['sh', '-c', 'mkdir /made 2> /init-mkdir; sleep 1000'];
    spec.annotations = { ...spec.annotations, 'org.example.purpose': 'seccomp agent test' };
    spec.linux!.seccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      listenerPath: agent.socket,
      listenerMetadata: 'metadata for the agent',
      syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_NOTIFY' }],
    };
  });
  const run = await env.run(['run', '-d', '--bundle', bundle, id]);
  t.is(run.code, 0, run.stderr);
  const initPid = (await env.state(id)).pid as number;
  const exec = await env.run(['exec', id, 'sh', '-c', 'mkdir /in-exec 2>&1; echo "mkdir=$?"; ls -d /in-exec 2>&1; true']);
  t.is(exec.code, 0, exec.stderr);
  t.is(exec.stdout, "mkdir: can't create directory '/in-exec': Invalid cross-device link\nmkdir=1\nls: /in-exec: No such file or directory\n",
    'the agent\'s answer (EXDEV), not the kernel\'s');
  const initAnswer = join(bundle, 'rootfs', 'init-mkdir');
  for (let i = 0; i < 100 && !existsSync(initAnswer); i++) await sleep(50);
  t.is(readFileSync(initAnswer, 'utf8'), "mkdir: can't create directory '/made': Invalid cross-device link\n");

  const states = agent.entries().filter((entry) => entry.state);
  t.is(states.length, 2, 'one state per process: the init, the exec');
  const container = { ociVersion: '1.0.2', id, bundle, annotations: { 'org.example.purpose': 'seccomp agent test' } };
  t.deepEqual(states[0], {
    fds: 1,
    state: { ociVersion: '1.0.2', fds: ['seccompFd'], pid: initPid, metadata: 'metadata for the agent', state: { ...container, status: 'creating', pid: initPid } },
  });
  const execPid = states[1]!.state.pid as number;
  t.not(execPid, initPid);
  t.deepEqual(states[1], {
    fds: 1,
    state: { ociVersion: '1.0.2', fds: ['seccompFd'], pid: execPid, metadata: 'metadata for the agent', state: { ...container, status: 'running', pid: initPid } },
  });
  // busybox's sh runs mkdir in a child: the notifications come from the processes the init and the exec forked.
  const notified = agent.entries().filter((entry) => entry.notified !== undefined);
  t.is(notified.length, 2, 'the mkdir of the init\'s shell and the exec\'s went to the agent');
  t.true(notified.every((entry) => entry.notified === 83 || entry.notified === 258), 'only mkdir and mkdirat are notified');
});

test('emulated: SCMP_ACT_NOTIFY with no seccomp agent at listenerPath fails create\'s start, naming it; nothing is left', async (t) => {
  const env = new TestEnv(t);
  const listenerPath = join(env.dir, 'nobody-listens.sock');
  const id = env.id();
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['true'];
    spec.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', listenerPath, syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] };
  });
  const result = await env.run(['run', '--bundle', bundle, id]);
  t.is(result.code, 1);
  t.is(errorMessage(result.stderr), `container ${id}: seccomp: connect to the seccomp agent at ${listenerPath} (listenerPath): no such file or directory`);
  t.is(result.stdout, '');
  t.deepEqual(processesMentioning(id), []);
});

test('qemu: SCMP_ACT_NOTIFY is refused before a VM starts: the listener cannot leave the guest', async (t) => {
  const env = new TestEnv(t);
  const id = env.id();
  const bundle = env.bundle((spec) => {
    inVm(spec);
    spec.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/seccomp-agent.sock', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] };
  });
  const result = await env.run(['create', '--bundle', bundle, id]);
  t.is(result.code, 1);
  t.regex(errorMessage(result.stderr), new RegExp(`^container ${id}: a microVM cannot hand its seccomp listener to the seccomp agent at /run/seccomp-agent\\.sock`));
  t.deepEqual(processesMentioning(id), []);
  t.is((await env.run(['list', '-q'])).stdout, '');
});

test('features says per driver whether SCMP_ACT_NOTIFY reaches a host listener', async (t) => {
  const env = new TestEnv(t);
  const result = await env.run(['features']);
  t.is(result.code, 0, result.stderr);
  const { annotations, linux } = JSON.parse(result.stdout) as { annotations: Record<string, string>; linux: { seccomp: { actions: string[] } } };
  t.true(linux.seccomp.actions.includes('SCMP_ACT_NOTIFY'));
  t.regex(annotations['io.runbox.driver.emulated.seccomp.notify']!, /^SCMP_ACT_NOTIFY: the listener fd is sent to linux\.seccomp\.listenerPath/);
  t.regex(annotations['io.runbox.driver.qemu.seccomp.notify']!, /^SCMP_ACT_NOTIFY refused: /);
});
