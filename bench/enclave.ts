// The enclave part of npm run bench: time to the first output of a container in an enclave (measured launch, vTPM)
// and in one that attests and fetches a secret first, beside a plain booted microVM of the same guest kernel, all
// interleaved in one run; and attestation's own cost, as the guest agent times its attester (request measured,
// RCAR with the key broker, the secret decrypted and written).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isServed } from '../src/host/unix-socket.js';
import { median } from './stats.js';
import { verdict } from './verdict.js';
import { BOOTED, runbox, vmBundle } from './vm.js';

const ROUNDS = Number(process.env.BENCH_ENCLAVE_ROUNDS ?? 7);
const RESOURCE = 'bench/key/one';

interface Context {
  project: string;
  work: string;
}

async function firstOutput(context: Context, root: string, bundle: string, id: string, env: NodeJS.ProcessEnv): Promise<number> {
  const run = await runbox(context, ['--root', root, 'run', '--bundle', bundle, id], env);
  if (run.firstOutput === undefined) throw new Error(`runbox run ${id} printed nothing`);
  return run.firstOutput;
}

/** The attester's time as the guest agent logged it (its console), for a detached container that sleeps. */
async function attesterMs(context: Context, root: string, bundle: string, id: string, env: NodeJS.ProcessEnv): Promise<number> {
  await runbox(context, ['--root', root, 'run', '-d', '--bundle', bundle, id], env);
  try {
    const console = readFileSync(join(root, id, 'console.log'), 'utf8');
    const ms = /secrets fetched in (\d+) ms/.exec(console)?.[1];
    if (!ms) throw new Error(`the guest did not log its attestation: ${console}`);
    return Number(ms);
  } finally {
    await runbox(context, ['--root', root, 'delete', '--force', id], env);
  }
}

export async function enclaveBench(context: Context): Promise<string> {
  const env: NodeJS.ProcessEnv = {
    ...BOOTED,
    RUNBOX_QEMU_ACCEL: 'tcg',
    RUNBOX_ENCLAVE_EK_CA_DIR: join(context.work, 'ek-ca'),
    RUNBOX_ENCLAVE_KBS: join(context.work, 'kbs.sock'),
    RUNBOX_ENCLAVE_KBS_ADMIN: join(context.work, 'kbs-admin.sock'),
    RUNBOX_ENCLAVE_DIGEST_CACHE: join(context.work, 'digests.json'),
  };
  const kbs = spawn(join(context.project, 'bin', 'runbox'), ['enclave', 'kbs', 'serve'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  try {
    while (!(await isServed(env.RUNBOX_ENCLAVE_KBS_ADMIN!))) {
      if (kbs.exitCode !== null) throw new Error('the key broker did not start');
      await sleep(20);
    }
    const cli = (args: string[], input?: string) => new Promise<string>((resolve, reject) => {
      const child = spawn(join(context.project, 'bin', 'runbox'), args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`runbox ${args.join(' ')} failed`))));
      child.stdin.end(input);
    });
    await cli(['enclave', 'kbs', 'put-resource', RESOURCE], 'a secret for the bench');
    const root = join(context.work, 'root-enclave');
    const echo = ['echo', 'first output'];
    const plain = vmBundle(context, 'qemu-echo', echo);
    const policy = { 'io.runbox.driver': 'enclave', 'io.runbox.enclave.policy': '{"output": true}' };
    const enclave = vmBundle(context, 'enclave-echo', echo, policy);
    const secret = { ...policy, 'io.runbox.enclave.secret.one': RESOURCE };
    const attested = vmBundle(context, 'enclave-secret-echo', echo, secret);
    const sleeper = vmBundle(context, 'enclave-secret-sleep', ['sleep', '1000'], secret);
    for (const [name, bundle] of [['echo', attested], ['sleep', sleeper]] as const) {
      await cli(['enclave', 'kbs', 'set-reference-values', name], await cli(['enclave', 'measure', bundle]));
    }

    const booted: number[] = [];
    const measured: number[] = [];
    const withSecret: number[] = [];
    const inGuest: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      booted.push(await firstOutput(context, root, plain, `qemu-${round}`, env));
      measured.push(await firstOutput(context, root, enclave, `enclave-${round}`, env));
      withSecret.push(await firstOutput(context, root, attested, `attested-${round}`, env));
      inGuest.push(await attesterMs(context, root, sleeper, `attester-${round}`, env));
    }
    const base = median(booted);
    const row = (name: string, ms: number, target = '') => `| ${name} | ${ms.toFixed(0)} ms | ${(ms - base >= 0 ? '+' : '')}${(ms - base).toFixed(0)} ms | ${target} |`;
    const attestation = median(inGuest);
    return [
      `enclave driver (vtpm) beside the qemu driver, accel tcg, templates off (an enclave is never restored); median of ${ROUNDS} rounds, interleaved; `
        + '`runbox run` of `echo` → its first output. "Attestation on its own": the guest agent\'s own timing of its attester '
        + '(initdata measured, RCAR with the key broker, one secret decrypted and written)',
      '',
      '| measure | value | beside a booted microVM | target |',
      '| --- | ---: | ---: | --- |',
      row('booted microVM (qemu driver)', base),
      row('enclave: measured launch, policy, no secret', median(measured)),
      row('enclave: attested, one secret fetched', median(withSecret), verdict((median(withSecret) - median(measured)) / 1000, 1, ' s added by attestation')),
      `| attestation on its own, in the guest | ${attestation.toFixed(0)} ms | | ${verdict(attestation / 1000, 1, ' s')} |`,
      '',
    ].join('\n');
  } finally {
    kbs.kill('SIGTERM');
  }
}
