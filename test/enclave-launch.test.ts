// The enclave driver's measured launch, end to end with real swtpm and QEMU under TCG: the vTPM of each enclave VM
// holds the launch (kernel, initramfs, command line) and the initdata as `runbox enclave measure` computes them from
// the same files; an enclave is never restored from a template; its swtpm ends with its VM, whoever is killed; it
// takes no pod and no lazily served rootfs; it reads its rootfs through dm-verity.
import test from 'ava';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RUNBOX, TestEnv, errorMessage, processesMentioning } from './helpers/runbox.js';
import { enclaveBundle, enclaveEnv, measure, parsePcrs, printPcrs } from './helpers/enclave.js';

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(5)) if (condition()) return true;
  return condition();
}

test('the vTPM holds the measured launch and initdata: PCRs 4, 8, 9, 12 as `runbox enclave measure` computes them', async (t) => {
  const env = new TestEnv(t);
  const pcrs = [0, 4, 8, 9, 12];
  const bundle = enclaveBundle(env, { args: ['sh', '-c', printPcrs(pcrs)], policy: { output: true } });
  const expected = await measure(t, env, bundle);
  t.deepEqual(expected.events.map((event) => event.pcr), [4, 9, 12, 8], 'kernel, initrd, command line, then initdata');
  const id = env.id();
  const result = await env.run(['run', '--bundle', bundle, id], { env: enclaveEnv(env) });
  t.is(result.code, 0, result.stderr);
  const seen = parsePcrs(result.stdout);
  for (const pcr of pcrs) t.is(seen[pcr], expected.pcrs[pcr], `PCR ${pcr} in the guest is the reference value`);
  t.not(seen[8], '0'.repeat(64), 'the guest measured its initdata');
  t.deepEqual(processesMentioning(join(env.root, id)), [], 'no QEMU or swtpm is left');
  t.false(existsSync(join(env.root, id)));

  // The initdata covers the policy and the create request: another policy, another args, another PCR 8.
  const otherPolicy = enclaveBundle(env, { args: ['sh', '-c', printPcrs(pcrs)], policy: { output: true, exec: true } });
  const otherArgs = enclaveBundle(env, { args: ['sh', '-c', `${printPcrs(pcrs)}; true`], policy: { output: true } });
  const [byPolicy, byArgs] = [await measure(t, env, otherPolicy), await measure(t, env, otherArgs)];
  t.not(byPolicy.pcrs[8], expected.pcrs[8]);
  t.not(byArgs.pcrs[8], expected.pcrs[8]);
  t.is(byPolicy.pcrs[4], expected.pcrs[4], 'the launch itself is the same');
});

test('an enclave is never restored from a template: asking for one is refused, and none is built', async (t) => {
  const env = new TestEnv(t);
  const refused = enclaveBundle(env, { args: ['true'], annotations: { 'io.runbox.qemu.template': 'on' } });
  const id = env.id();
  const result = await env.run(['run', '--bundle', refused, id], { env: enclaveEnv(env) });
  t.is(result.code, 1);
  t.regex(errorMessage(result.stderr), /io\.runbox\.qemu\.template=on: an enclave VM is never restored from a template/);
  t.false(existsSync(join(env.root, id)), 'nothing is left of the refused container');
  // Templates are on by default for microVMs: an enclave boots all the same and builds none.
  const booted = await env.run(['run', '--bundle', enclaveBundle(env, { args: ['true'] }), env.id()], { env: enclaveEnv(env) });
  t.is(booted.code, 0, booted.stderr);
  t.false(existsSync(join(env.dir, 'templates')) && readdirSync(join(env.dir, 'templates')).length > 0, 'no template was built');
});

test('swtpm ends with its VM: after kill -9 of the CLI while it provisions the TPM, and of QEMU', async (t) => {
  const env = new TestEnv(t);
  // The CLI killed while its provisioning swtpm runs (before QEMU exists): that swtpm dies with it.
  const id = env.id();
  const bundle = enclaveBundle(env, { args: ['sleep', '1000'] });
  // The provisioning swtpm (the one with a --server) says it has started, and waits 3 s before it runs (a builtin
  // read: no child process), so that the kill falls while it runs, however fast the provisioning is.
  const [started, fifo, slowSwtpm] = ['swtpm-started', 'swtpm-wait', 'swtpm'].map((name) => join(env.dir, name));
  writeFileSync(slowSwtpm, [
    '#!/bin/bash',
    'case " $* " in *" --server "*)',
    `  : > '${started}'; mkfifo '${fifo}' 2>/dev/null; read -r -t 3 <> '${fifo}'`,
    'esac',
    'exec swtpm "$@"',
    '',
  ].join('\n'), { mode: 0o755 });
  const cli = spawn(RUNBOX, ['--root', env.root, 'create', '--bundle', bundle, id], { stdio: 'ignore', env: enclaveEnv(env, { RUNBOX_SWTPM: slowSwtpm }) });
  const exited = new Promise((resolve) => cli.once('exit', resolve));
  t.true(await until(() => existsSync(started), 20_000), 'the CLI provisions the vTPM');
  t.true(processesMentioning(join(env.root, id)).length > 0, 'its swtpm runs');
  cli.kill('SIGKILL');
  await exited;
  t.true(await until(() => processesMentioning(join(env.root, id)).length === 0, 5000), 'the provisioning swtpm died with the CLI');
  t.is((await env.run(['delete', '--force', id])).code, 0);

  // A running enclave whose QEMU is killed: its swtpm (QEMU's child) dies with it.
  const running = env.id();
  const made = await env.run(['run', '-d', '--bundle', enclaveBundle(env, { args: ['sleep', '1000'] }), running], { env: enclaveEnv(env) });
  t.is(made.code, 0, made.stderr);
  const swtpm = processesMentioning(join(env.root, running, 'vtpm'));
  t.is(swtpm.length, 1, 'one swtpm runs for the VM');
  const { pid } = await env.state(running) as { pid: number };
  process.kill(pid, 'SIGKILL');
  t.true(await until(() => processesMentioning(join(env.root, running)).length === 0, 5000), 'the swtpm died with QEMU');
  t.is((await env.run(['delete', '--force', running])).code, 0);
  t.false(existsSync(join(env.root, running)));
});

test('runbox features names the TEEs this host gives; an enclave on one it does not give is refused before anything starts', async (t) => {
  const env = new TestEnv(t);
  const features = await env.run(['features']);
  t.is(features.code, 0, features.stderr);
  const annotations = (JSON.parse(features.stdout) as { annotations: Record<string, string> }).annotations;
  t.is(annotations['io.runbox.driver.enclave.isolation'], 'enclave');
  t.is(annotations['io.runbox.driver.enclave.tees'], 'vtpm');
  t.regex(annotations['io.runbox.driver.enclave.tee.snp']!, /^unavailable: QEMU \S+ has no sev-snp-guest object/);
  t.regex(annotations['io.runbox.driver.enclave.tee.tdx']!, /^unavailable: QEMU \S+ has no tdx-guest object/);
  for (const tee of ['snp', 'tdx']) {
    const id = env.id();
    const bundle = enclaveBundle(env, { args: ['true'], annotations: { 'io.runbox.enclave.tee': tee } });
    const result = await env.run(['run', '--bundle', bundle, id], { env: enclaveEnv(env) });
    t.is(result.code, 1);
    t.regex(errorMessage(result.stderr), new RegExp(`container ${id}: io\\.runbox\\.enclave\\.tee=${tee}: this host cannot launch it: QEMU \\S+ has no ${tee === 'snp' ? 'sev-snp' : 'tdx'}-guest object`));
    t.false(existsSync(join(env.root, id)), 'nothing is left');
    const measured = await env.run(['enclave', 'measure', bundle], { env: enclaveEnv(env) });
    t.is(measured.code, 1);
    t.regex(errorMessage(measured.stderr), new RegExp(`io\\.runbox\\.enclave\\.tee=${tee}: this host cannot launch it`));
  }
});

test('an enclave VM runs one container: a pod\'s container and a lazily served rootfs are refused before anything starts', async (t) => {
  const env = new TestEnv(t);
  const pod = enclaveBundle(env, { args: ['true'], annotations: { 'io.kubernetes.cri.sandbox-id': 'pod-1', 'io.kubernetes.cri.container-type': 'sandbox' } });
  // What `runbox pull --lazy` leaves beside a lazily served rootfs.
  const lazy = enclaveBundle(env, { args: ['true'] });
  mkdirSync(join(lazy, '.lazy'));
  writeFileSync(join(lazy, '.lazy', 'disk.json'), '{}');
  for (const [bundle, cause] of [[pod, /an enclave VM runs one container: a pod's containers cannot share one/], [lazy, /a lazily served rootfs cannot be; pull the image in full/]] as const) {
    const id = env.id();
    const result = await env.run(['run', '--bundle', bundle, id], { env: enclaveEnv(env) });
    t.is(result.code, 1);
    t.is(result.stdout, '');
    t.regex(errorMessage(result.stderr), new RegExp(`container ${id}: .*${cause.source}`));
    t.false(existsSync(join(env.root, id)), 'nothing is left');
    t.deepEqual(processesMentioning(join(env.root, id)), []);
  }
});

test('the guest reads its rootfs through dm-verity: a block the host changes on the VM\'s disk after the launch is an I/O error in the container', async (t) => {
  const env = new TestEnv(t);
  const id = env.id();
  const bundle = enclaveBundle(env, { args: ['sleep', '1000'], policy: { exec: true, output: true } });
  // Two files of their own bytes, large enough that the guest's read-ahead at boot does not reach their ends.
  const [kept, changed] = [randomBytes(4 << 20), randomBytes(4 << 20)];
  mkdirSync(join(bundle, 'rootfs', 'zz'));
  writeFileSync(join(bundle, 'rootfs', 'zz', 'kept.bin'), kept);
  writeFileSync(join(bundle, 'rootfs', 'zz', 'changed.bin'), changed);
  const made = await env.run(['run', '-d', '--bundle', bundle, id], { env: enclaveEnv(env) });
  t.is(made.code, 0, made.stderr);

  // The host flips one byte of the last block of changed.bin in the VM's disk, under the running guest.
  const disk = join(env.root, id, 'rootfs.img');
  const tail = changed.subarray(changed.length - 4096);
  const fd = openSync(disk, 'r+');
  const image = Buffer.alloc(32 << 20); // the disk is sparse; its image (and hash tree) is at its start
  readSync(fd, image, 0, image.length, 0);
  const offset = image.indexOf(tail);
  t.true(offset > 0, 'the file\'s last block is in the disk');
  writeSync(fd, Buffer.from([tail[100]! ^ 0xff]), 0, 1, offset + 100);
  closeSync(fd);

  const good = await env.run(['exec', id, 'sha256sum', '/zz/kept.bin']);
  t.is(good.code, 0, good.stderr);
  t.is(good.stdout.split(' ')[0], createHash('sha256').update(kept).digest('hex'), 'an unchanged file reads as it was measured');
  const bad = await env.run(['exec', id, 'sha256sum', '/zz/changed.bin']);
  t.not(bad.code, 0, 'the changed file cannot be read');
  t.regex(bad.stderr, /Input\/output error/);
  t.is((await env.run(['delete', '--force', id])).code, 0);
});
