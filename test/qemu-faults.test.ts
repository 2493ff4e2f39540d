// The qemu driver's faults that leaked or misled: a container's output in a regular file its caller also writes,
// a 255-character id under a long state root, a damaged state.json, and a config that asks for what only the host
// has. Real QEMU under TCG, with a template store of each test's own.
import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Spec } from '../src/oci/spec.js';
import { RUNBOX, TestEnv, errorMessage, processesMentioning, runCommand } from './helpers/runbox.js';

function vmEnv(env: TestEnv, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env, RUNBOX_DRIVER: 'qemu', RUNBOX_QEMU_ACCEL: 'tcg', RUNBOX_QEMU_TEMPLATE_DIR: join(env.dir, 'templates'), ...extra,
  };
}

/** Nothing of a container is left on the host: no QEMU, no state directory (sockets, image, files). */
function assertNothingLeft(t: import('ava').ExecutionContext, root: string, id: string): void {
  t.deepEqual(processesMentioning(join(root, id)), [], 'no QEMU (or anything else) runs for the container');
  t.false(existsSync(join(root, id)), 'the container state directory is gone');
}

test('a VM container writes to its caller\'s file where the caller\'s own writes leave off, restored or booted', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'echo inner-output-line; echo inner-error-line >&2'];
  });
  const out = join(env.dir, 'out');
  // The first run builds the template and is restored from it; the last boots without one.
  for (const template of ['on', 'on', 'off']) {
    const script = `{ echo before; '${RUNBOX}' --root '${env.root}' run --bundle '${bundle}' "$1"; echo after; } > '${out}' 2>&1`;
    const result = await runCommand('sh', ['-c', script, 'sh', env.id()], { env: vmEnv(env, { RUNBOX_QEMU_TEMPLATE: template }) });
    t.is(result.code, 0, readFileSync(out, 'utf8'));
    t.is(readFileSync(out, 'utf8'), 'before\ninner-output-line\ninner-error-line\nafter\n', `template ${template}`);
  }
});

test('a VM container\'s output to a regular file open for reading and writing is refused at create, unless it appends', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'echo inner-output-line; echo inner-error-line >&2'];
  });
  const out = join(env.dir, 'out');
  const err = join(env.dir, 'err');
  // `1<>FILE`: QEMU could only reopen it, and would write over what the caller writes after the container.
  const id = env.id();
  const script = `{ echo before; '${RUNBOX}' --root '${env.root}' run --bundle '${bundle}' "$1"; echo "run=$?"; echo after; } 1<> '${out}' 2> '${err}'`;
  await runCommand('sh', ['-c', script, 'sh', id], { env: vmEnv(env) });
  t.is(readFileSync(out, 'utf8'), 'before\nrun=1\nafter\n');
  t.is(errorMessage(readFileSync(err, 'utf8')), `container ${id}: the qemu driver cannot write the container's stdout to ${out}, a regular file open for reading and writing: `
    + 'QEMU would write it at an offset of its own, over what is written there after it; open it write-only (> or >>) or for appending, or use a pipe');
  assertNothingLeft(t, env.root, id);

  // Open for reading, writing and appending (Python's `a+`): every write goes to the end, the container's too.
  const appended = join(env.dir, 'appended');
  const python = [
    'import os, subprocess, sys',
    `fd = os.open(${JSON.stringify(appended)}, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)`,
    'os.write(fd, b"before\\n")',
    'code = subprocess.run(sys.argv[1:], stdout=fd, stderr=fd).returncode',
    'os.write(fd, f"run={code}\\nafter\\n".encode())',
  ].join('\n');
  await runCommand('python3', ['-c', python, RUNBOX, '--root', env.root, 'run', '--bundle', bundle, env.id()], { env: vmEnv(env) });
  t.is(readFileSync(appended, 'utf8'), 'before\ninner-output-line\ninner-error-line\nrun=0\nafter\n');
});

test('a VM container with a 255-character id under a long state root: created, started in C, exec\'d into, deleted', async (t) => {
  const env = new TestEnv(t);
  const root = join(env.root, 'r'.repeat(120));
  const id = 'v'.repeat(255);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '1000'];
  });
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCommand(RUNBOX, ['--root', root, ...args], { env: vmEnv(env, extra) });
  // The test's own clean-up knows env.root only.
  t.teardown(() => run(['delete', '--force', id]));
  const created = await run(['create', '--bundle', bundle, id]);
  t.is(created.code, 0, created.stderr);
  const started = await run(['start', id], { PATH: '/nonexistent' });
  t.is(started.code, 0, started.stderr);
  const exec = await run(['exec', id, 'echo', 'inside']);
  t.deepEqual([exec.code, exec.stdout], [0, 'inside\n'], exec.stderr);
  t.is((await run(['delete', '--force', id])).code, 0);
  assertNothingLeft(t, root, id);
});

test('delete --force ends the VM of a container whose state.json is damaged', async (t) => {
  const env = new TestEnv(t);
  const id = env.id();
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '1000'];
  });
  t.is((await env.run(['run', '-d', '--bundle', bundle, id], { env: vmEnv(env) })).code, 0);
  t.not(processesMentioning(join(env.root, id)).length, 0, 'its QEMU runs');
  writeFileSync(join(env.root, id, 'state.json'), '{}');
  t.is((await env.run(['kill', id, 'KILL'])).code, 1);
  const deleted = await env.run(['delete', '--force', id]);
  t.is(deleted.code, 0, deleted.stderr);
  assertNothingLeft(t, env.root, id);
});

test('a VM refuses to join a host namespace or bind-mount a host path, at create, saying so', async (t) => {
  const env = new TestEnv(t);
  const cases: Array<[(spec: Spec) => void, RegExp]> = [
    [(spec) => spec.linux!.namespaces!.push({ type: 'ipc', path: `/proc/${process.pid}/ns/ipc` }).toString(),
      /a microVM cannot join the host's ipc namespace \/proc\/\d+\/ns\/ipc: the container runs under the VM's own kernel/],
    [(spec) => spec.mounts!.push({ destination: '/host-etc', type: 'bind', source: '/etc', options: ['rbind', 'ro'] }).toString(),
      /the qemu driver cannot bind-mount the host path \/etc on \/host-etc in a microVM: it gives only mounts made in the guest/],
  ];
  for (const [edit, message] of cases) {
    const bundle = env.bundle((spec) => {
      spec.linux!.namespaces = spec.linux!.namespaces!.filter((ns) => ns.type !== 'ipc');
      edit(spec);
    });
    const id = env.id();
    const result = await env.run(['create', '--bundle', bundle, id], { env: vmEnv(env) });
    t.is(result.code, 1);
    t.regex(errorMessage(result.stderr), new RegExp(`^container ${id}: ${message.source}`));
    assertNothingLeft(t, env.root, id);
  }
});
