// `auto` acceleration on a host never probed, whatever this machine's own KVM does: a wrapper QEMU plays the KVM
// (one that aborts QEMU, one that never runs the guest, one that works) and runs the real QEMU on TCG; the KVM
// device and the verdict file are the test's own. Through the CLI; the shim's side is in shim-qemu.test.ts.
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { qemuCalls, qemuWithKvmThat } from './helpers/qemu.js';
import { processesMentioning, TestEnv, type Result } from './helpers/runbox.js';

const PROBE_TIMEOUT_S = 5;

/** A host never probed: a KVM device that opens, no verdict yet; templates of the test's own; no acceleration pinned. */
function freshHost(env: TestEnv, kvm: 'aborts' | 'hangs' | 'works'): NodeJS.ProcessEnv {
  const device = join(env.dir, 'kvm');
  writeFileSync(device, '');
  return {
    ...process.env,
    RUNBOX_QEMU_ACCEL: undefined,
    RUNBOX_DRIVER: 'qemu',
    RUNBOX_QEMU: qemuWithKvmThat(kvm, env.dir),
    RUNBOX_QEMU_KVM_DEVICE: device,
    RUNBOX_QEMU_KVM_VERDICT: join(env.dir, 'kvm-verdict.json'),
    RUNBOX_QEMU_TEMPLATE_DIR: join(env.dir, 'templates'),
  };
}

function verdict(env: TestEnv): { works: boolean; why?: string } {
  return JSON.parse(readFileSync(join(env.dir, 'kvm-verdict.json'), 'utf8')) as { works: boolean; why?: string };
}

function logLines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

async function accelFeature(env: TestEnv, hostEnv: NodeJS.ProcessEnv): Promise<{ accel: string; why: string }> {
  const result = await env.run(['features'], { env: hostEnv });
  const { annotations } = JSON.parse(result.stdout) as { annotations: Record<string, string> };
  return { accel: annotations['io.runbox.driver.qemu.accel']!, why: annotations['io.runbox.driver.qemu.accel.why']! };
}

/** `runbox --log LOG run` of a container that prints its kernel's name. */
async function runLogged(env: TestEnv, hostEnv: NodeJS.ProcessEnv, log: string): Promise<Result> {
  const bundle = env.bundle((spec) => (spec.process!.args = ['sh', '-c', 'echo "in the VM: $(uname -s)"']));
  return env.run(['--log', log, 'run', '--bundle', bundle, env.id()], { env: hostEnv, timeout: 90_000 });
}

for (const [kvm, why] of [
  ['aborts', /the microVM \(accel kvm\) failed to start: .*failed to set MSR 0x10a .*kvm_buf_set_msrs: Assertion/],
  ['hangs', new RegExp(`the guest did not report ready within ${PROBE_TIMEOUT_S} s \\(accel kvm, VM prelaunch\\)`)],
] as const) {
  test(`a KVM that ${kvm === 'aborts' ? 'aborts QEMU' : 'never runs the guest'}: the first auto VM runs on TCG, the log says why once, the next VM goes straight to TCG`, async (t) => {
    const env = new TestEnv(t);
    const host = freshHost(env, kvm);
    const before = await accelFeature(env, host);
    t.is(before.accel, 'kvm-or-tcg');
    t.regex(before.why, new RegExp(`no guest has booted on it yet: the first microVM tries KVM.* within ${PROBE_TIMEOUT_S} s`));

    const log = join(env.dir, 'runbox.log');
    const first = await runLogged(env, host, log);
    t.deepEqual([first.code, first.stdout, first.stderr], [0, 'in the VM: Linux\n', ''], 'the user\'s first command succeeds, and says nothing more');
    const lines = logLines(log);
    t.is(lines.length, 1, lines.join('\n'));
    t.regex(lines[0]!, /level=warning msg="container c-\S+: KVM was tried and not used: .*; the microVM runs on TCG/);
    t.regex(lines[0]!, why);

    const calls = qemuCalls(env.dir);
    t.is(calls[0]?.accel, 'kvm', 'KVM was tried first');
    t.deepEqual(calls.slice(1).map((call) => call.accel), calls.slice(1).map(() => 'tcg'), 'then only TCG');
    t.false(calls[0]!.argv.includes(join(env.dir, 'templates')), 'the KVM probe built no template');
    t.true(calls.slice(1).some((call) => call.argv.includes(join(env.dir, 'templates'))), 'the template was built (and restored) on TCG');

    t.false(verdict(env).works);
    t.regex(verdict(env).why!, why);
    const after = await accelFeature(env, host);
    t.is(after.accel, 'tcg');
    t.regex(after.why, /KVM was tried on this host and could not run a guest/);
    t.regex(after.why, why);

    const second = await runLogged(env, host, log);
    t.deepEqual([second.code, second.stdout, second.stderr], [0, 'in the VM: Linux\n', '']);
    const secondCalls = qemuCalls(env.dir).slice(calls.length);
    t.true(secondCalls.length > 0);
    t.deepEqual(secondCalls.map((call) => call.accel), secondCalls.map(() => 'tcg'), 'the second VM went straight to TCG');
    t.is(logLines(log).length, 1, 'and logged nothing');
    t.deepEqual(processesMentioning(env.dir), [], 'no QEMU is left, the failed probe\'s included');
  });
}

test('two first VMs at once on a host never probed: both run, one probe decides for both', async (t) => {
  const env = new TestEnv(t);
  const host = freshHost(env, 'hangs');
  const logs = [join(env.dir, 'a.log'), join(env.dir, 'b.log')];
  const results = await Promise.all(logs.map((log) => runLogged(env, host, log)));
  for (const result of results) t.deepEqual([result.code, result.stdout, result.stderr], [0, 'in the VM: Linux\n', '']);
  t.deepEqual(qemuCalls(env.dir).filter((call) => call.accel === 'kvm').length, 1, 'KVM was tried once');
  t.false(verdict(env).works);
  const lines = logs.flatMap(logLines);
  t.is(lines.length, 1, 'the VM that tried KVM says so; the other took its verdict');
  t.regex(lines[0]!, /KVM was tried and not used/);
  t.deepEqual(processesMentioning(env.dir), []);
});

test('a KVM that runs the guest: the first auto VM stays on KVM and logs nothing, the verdict says so, the next VM gets a KVM template', async (t) => {
  const env = new TestEnv(t);
  // Its "KVM" is TCG, which a loaded machine can keep from greeting within the 5 s a real KVM guest is given.
  const host = { ...freshHost(env, 'works'), RUNBOX_QEMU_KVM_PROBE_TIMEOUT: '60' };
  const log = join(env.dir, 'runbox.log');
  const first = await runLogged(env, host, log);
  t.deepEqual([first.code, first.stdout, first.stderr], [0, 'in the VM: Linux\n', '']);
  t.deepEqual(logLines(log), []);
  t.deepEqual(qemuCalls(env.dir).map((call) => call.accel), ['kvm'], 'the probe was the VM itself, booted');
  t.true(verdict(env).works);
  t.is((await accelFeature(env, host)).accel, 'kvm');
  const second = await runLogged(env, host, log);
  t.deepEqual([second.code, second.stdout, second.stderr], [0, 'in the VM: Linux\n', '']);
  const calls = qemuCalls(env.dir).slice(1);
  t.deepEqual(calls.map((call) => call.accel), calls.map(() => 'kvm'));
  t.true(calls.some((call) => call.argv.includes(join(env.dir, 'templates'))), 'its template was built on KVM');
});

test('features tells the acceleration a host gets and why: no KVM device, a pinned choice, the probe\'s deadline, a KVM seen to work', async (t) => {
  const env = new TestEnv(t);
  const host = freshHost(env, 'aborts');
  const noDevice = await accelFeature(env, { ...host, RUNBOX_QEMU_KVM_DEVICE: join(env.dir, 'no-kvm') });
  t.deepEqual(noDevice, { accel: 'tcg', why: `auto (RUNBOX_QEMU_ACCEL or a container's io.runbox.qemu.accel annotation can pick kvm or tcg): ${join(env.dir, 'no-kvm')} is absent or cannot be opened read-write` });
  const pinned = await accelFeature(env, { ...host, RUNBOX_QEMU_ACCEL: 'kvm' });
  t.deepEqual(pinned, { accel: 'kvm', why: 'RUNBOX_QEMU_ACCEL=kvm; a container\'s io.runbox.qemu.accel annotation overrides it' });
  const probeLonger = await accelFeature(env, { ...host, RUNBOX_QEMU_KVM_PROBE_TIMEOUT: '12' });
  t.is(probeLonger.accel, 'kvm-or-tcg');
  t.regex(probeLonger.why, /has not greeted within 12 s/);
  t.deepEqual(await accelFeature(env, { ...host, RUNBOX_QEMU_KVM_PROBE_TIMEOUT: 'soon' }), {
    accel: 'none', why: 'invalid RUNBOX_QEMU_KVM_PROBE_TIMEOUT "soon" (expected seconds > 0)',
  });
  writeFileSync(join(env.dir, 'kvm-verdict.json'), JSON.stringify({ works: true, hostKernel: release() }));
  const proven = await accelFeature(env, host);
  t.is(proven.accel, 'kvm');
  t.regex(proven.why, /a guest has booted on KVM on this host/);
});
