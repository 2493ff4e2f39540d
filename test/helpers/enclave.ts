// Enclave containers in tests: bundles for the enclave driver, its environment, reading its vTPM's PCRs from inside.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { Spec } from '../../src/oci/spec.js';
import { RUNBOX, runCommand, TestEnv, processesMentioning } from './runbox.js';

/** The enclave driver under TCG, with the test's own template directory (which it must never use). */
export function enclaveEnv(env: TestEnv, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    RUNBOX_QEMU_ACCEL: 'tcg',
    RUNBOX_QEMU_TEMPLATE_DIR: join(env.dir, 'templates'),
    RUNBOX_ENCLAVE_DIGEST_CACHE: join(env.dir, 'digests.json'),
    RUNBOX_ENCLAVE_EK_CA_DIR: join(env.dir, 'ek-ca'),
    ...extra,
  };
}

export interface EnclaveBundleOptions {
  args: string[];
  /** The policy file's content (written beside config.json); absent: the strict default. */
  policy?: Record<string, boolean>;
  annotations?: Record<string, string>;
  edit?: (spec: Spec) => void;
}

export function enclaveBundle(env: TestEnv, options: EnclaveBundleOptions): string {
  const bundle = env.bundle((spec) => {
    spec.process!.args = options.args;
    spec.annotations = {
      'io.runbox.driver': 'enclave',
      ...(options.policy && { 'io.runbox.enclave.policy': 'policy.json' }),
      ...options.annotations,
    };
    options.edit?.(spec);
  });
  if (options.policy) writeFileSync(join(bundle, 'policy.json'), JSON.stringify(options.policy));
  return bundle;
}

/** A shell command that prints `pcrN VALUE` (lowercase hex) for each PCR, read from the guest kernel's sysfs. */
export function printPcrs(pcrs: number[]): string {
  return pcrs.map((n) => `echo pcr${n} $(tr A-F a-f < /sys/class/tpm/tpm0/pcr-sha256/${n})`).join('; ');
}

export function parsePcrs(output: string): Record<string, string> {
  return Object.fromEntries([...output.matchAll(/^pcr(\d+) ([0-9a-f]{64})$/gm)].map(([, n, value]) => [n!, value!]));
}

/** `runbox enclave measure BUNDLE`, parsed. */
export async function measure(t: ExecutionContext, env: TestEnv, bundle: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{
  pcrs: Record<string, string>; initdata: string; events: Array<{ pcr: number; what: string; digest: string }>; resources: string[];
}> {
  const result = await runCommand(RUNBOX, ['enclave', 'measure', bundle], { env: enclaveEnv(env, extraEnv) });
  t.is(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as never;
}

/** No QEMU, no swtpm, nothing else runs for the container, and its state directory is gone. */
export function nothingLeft(env: TestEnv, id: string): { processes: number[] } {
  return { processes: processesMentioning(join(env.root, id)) };
}
