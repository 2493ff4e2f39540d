// Booting from a template (src/drivers/qemu/qemu-template.ts): the first microVM for a kernel, initramfs and size
// is booted and snapshotted; the next ones are that snapshot restored. Real QEMU under TCG, through the CLI.
import test from 'ava';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { guestAssets } from '../src/drivers/qemu/guest-assets.js';
import { clonePausingQemu, isStopped, killAll } from './helpers/qemu.js';
import { RUNBOX, TestEnv, errorMessage, processesMentioning, runCommand } from './helpers/runbox.js';

/** A store of the test's own, so that what it finds there is what this test made. */
function templateEnv(env: TestEnv, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env, RUNBOX_DRIVER: 'qemu', RUNBOX_QEMU_ACCEL: 'tcg', RUNBOX_QEMU_TEMPLATE_DIR: join(env.dir, 'templates'), ...extra,
  };
}

function templates(env: TestEnv): string[] {
  const dir = join(env.dir, 'templates');
  return existsSync(dir) ? readdirSync(dir).filter((name) => !name.endsWith('.lock')).sort() : [];
}

/** The container prints the guest's clock (s) and 16 random bytes, then reads its stdin to the end. */
function reporter(env: TestEnv): string {
  return env.bundle((spec) => {
    spec.process!.args = ['sh', '-c', 'date +%s; head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"; echo; cat; echo stdin-ended'];
  });
}

/** `runbox run` with a terminal for stdin and stdout (script(1)): a terminal's input is not the container's. */
async function runOnTerminal(env: TestEnv, bundle: string, vmEnv: NodeJS.ProcessEnv): Promise<{ code: number | null; lines: string[]; hostS: [number, number] }> {
  const command = `'${RUNBOX}' --root '${env.root}' run --bundle '${bundle}' ${env.id()}`;
  const started = Date.now() / 1000;
  const result = await runCommand('script', ['-qec', command, '/dev/null'], { env: vmEnv, timeout: 60_000 });
  return { code: result.code, lines: result.stdout.split(/\r?\n/).filter(Boolean), hostS: [started, Date.now() / 1000] };
}

test('the first VM builds a template and the next are restored from it: each with the host\'s clock, random numbers of its own, and an empty stdin when the caller\'s is a terminal', async (t) => {
  const env = new TestEnv(t);
  const bundle = reporter(env);
  const vmEnv = templateEnv(env);
  const first = await runOnTerminal(env, bundle, vmEnv);
  t.is(first.code, 0, first.lines.join('\n'));
  t.is(templates(env).length, 1, 'the first VM left a template');
  // Long enough for a clone that kept the template's clock to be seen to.
  await sleep(5000);
  const clones = [await runOnTerminal(env, bundle, vmEnv), await runOnTerminal(env, bundle, vmEnv)];
  for (const clone of clones) {
    t.is(clone.code, 0, clone.lines.join('\n'));
    const [clock, random, ended] = clone.lines;
    // The host's time while the run lasted (the template's was 5 s before it), a second either side for
    // `date`'s whole seconds.
    const [from, to] = clone.hostS;
    t.true(Number(clock) >= Math.floor(from) - 1 && Number(clock) <= to + 1, `the guest's clock ${clock} is the host's: ${from.toFixed(1)}–${to.toFixed(1)}`);
    t.regex(random!, /^[0-9a-f]{32}$/);
    t.is(ended, 'stdin-ended', 'the container read an empty stdin to its end');
  }
  t.not(clones[0]!.lines[1], clones[1]!.lines[1], 'two clones of one template draw different random numbers');
  t.is(templates(env).length, 1, 'the clones were restored from the one template');

  // A container in the background shows where its VM came from.
  const id = env.id();
  const background = await env.run(['run', '-d', '--bundle', env.bundle((spec) => (spec.process!.args = ['sleep', '100'])), id], { env: vmEnv });
  t.is(background.code, 0, background.stderr);
  const state = JSON.parse(readFileSync(join(env.root, id, 'state.json'), 'utf8')) as { sandbox: { template?: string } };
  t.deepEqual([state.sandbox.template], templates(env));
  t.is((await env.run(['delete', '--force', id])).code, 0);
});

test('a template that cannot be restored is dropped, the VM boots instead, and the next VM builds a new one', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => (spec.process!.args = ['echo', 'ran']));
  const vmEnv = templateEnv(env);
  t.is((await env.run(['run', '--bundle', bundle, env.id()], { env: vmEnv })).code, 0);
  const [key] = templates(env);
  writeFileSync(join(env.dir, 'templates', key!, 'state'), 'not a snapshot');
  const result = await env.run(['run', '--bundle', bundle, env.id()], { env: vmEnv });
  t.deepEqual([result.code, result.stdout], [0, 'ran\n'], result.stderr);
  t.deepEqual(templates(env), [], 'the broken template is gone');
  t.is((await env.run(['run', '--bundle', bundle, env.id()], { env: vmEnv })).code, 0);
  t.deepEqual(templates(env), [key], 'a new template was built in its place');
  t.not(readFileSync(join(env.dir, 'templates', key!, 'state'), 'utf8').slice(0, 14), 'not a snapshot');
});

test('a template follows its files: a rebuilt initramfs gets a new one, and the stale one is removed', async (t) => {
  const env = new TestEnv(t);
  const initrd = join(env.dir, 'initrd.img');
  copyFileSync(guestAssets().initrd, initrd);
  const bundle = env.bundle((spec) => (spec.process!.args = ['true']));
  const vmEnv = templateEnv(env, { RUNBOX_QEMU_INITRD: initrd });
  t.is((await env.run(['run', '--bundle', bundle, env.id()], { env: vmEnv })).code, 0);
  const before = templates(env);
  t.is(before.length, 1);
  utimesSync(initrd, new Date(), new Date(Date.now() + 60_000));
  const rebuilt = await env.run(['run', '--bundle', bundle, env.id()], { env: vmEnv });
  t.is(rebuilt.code, 0, rebuilt.stderr);
  const after = templates(env);
  t.is(after.length, 1, `one template is left: ${after.join(', ')}`);
  t.not(after[0], before[0], 'it is a new one');
  t.deepEqual(processesMentioning(join(env.dir, 'templates')), [], 'no template VM is left running');
});

test('templates off: the VM boots its kernel and no template is kept; a bad setting is refused before anything starts', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => (spec.process!.args = ['echo', 'booted']));
  const booted = await env.run(['run', '--bundle', bundle, env.id()], { env: templateEnv(env, { RUNBOX_QEMU_TEMPLATE: 'off' }) });
  t.deepEqual([booted.code, booted.stdout], [0, 'booted\n'], booted.stderr);
  t.deepEqual(templates(env), []);
  const id = env.id();
  const refused = await env.run(['run', '--bundle', env.bundle((spec) => {
    spec.process!.args = ['true'];
    spec.annotations = { 'io.runbox.qemu.template': 'sometimes' };
  }), id], { env: templateEnv(env) });
  t.is(refused.code, 1);
  t.is(errorMessage(refused.stderr), `container ${id}: invalid io.runbox.qemu.template "sometimes" (expected on or off)`);
  t.false(existsSync(join(env.root, id)));
});

test('VMs created at once with no template yet: one template is built, and each VM gets its container', async (t) => {
  const env = new TestEnv(t);
  const vmEnv = templateEnv(env);
  const runs = await Promise.all(['one', 'two', 'three'].map((word) => {
    const bundle = env.bundle((spec) => (spec.process!.args = ['echo', word]));
    return env.run(['run', '--bundle', bundle, env.id()], { env: vmEnv });
  }));
  t.deepEqual(runs.map((run) => [run.code, run.stdout]), [[0, 'one\n'], [0, 'two\n'], [0, 'three\n']], runs.map((run) => run.stderr).join(''));
  t.is(templates(env).length, 1, `one template: ${templates(env).join(', ')}`);
  t.deepEqual(readdirSync(join(env.dir, 'templates')).filter((name) => name.startsWith('.build')), [], 'no build directory is left');
});

test('a CLI killed before its clone was restored: the waiting QEMU (which would never power itself off) is ended by delete --force', async (t) => {
  const env = new TestEnv(t);
  const bin = join(env.dir, 'bin');
  mkdirSync(bin);
  const vmEnv = templateEnv(env, { RUNBOX_QEMU: clonePausingQemu(bin) });
  const bundle = env.bundle((spec) => (spec.process!.args = ['true']));
  const id = env.id();
  const cli = spawn(RUNBOX, ['--root', env.root, 'create', '--bundle', bundle, id], { stdio: 'ignore', env: vmEnv });
  const dir = join(env.root, id);
  // Should the test fail before the CLI is killed, the CLI and its clone would wait for ever: they go with the test.
  t.teardown(() => killAll([cli.pid!, ...processesMentioning(dir)]));
  const stopped = () => isStopped(cli.pid!);
  for (let i = 0; i < 3000 && !(processesMentioning(dir).length > 0 && stopped()); i++) await sleep(20);
  t.true(stopped(), 'the CLI was stopped by its clone QEMU');
  cli.kill('SIGKILL');
  const deleted = await env.run(['delete', '--force', id], { env: vmEnv });
  t.is(deleted.code, 0, deleted.stderr);
  t.deepEqual(processesMentioning(dir), [], 'no QEMU is left for the container');
  t.false(existsSync(dir));
});
