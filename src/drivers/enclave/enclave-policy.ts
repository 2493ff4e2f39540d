// The policy the guest agent enforces for an enclave's container: what the host may do to it after launch. It is
// sent in the create request and measured with it (initdata), so that a host that changes it changes the
// measurement. The default is the strict one: no exec into the container, its stdio neither read nor written.
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { SpecError } from '../../errors/errors.js';
import type { RecordList } from '../../agent-client/agent-records.js';
import type { Spec } from '../../oci/spec.js';

/**
 * config.json's annotation with the policy: a JSON object itself (as Kubernetes annotations carry it), else the
 * path of a policy file, relative to the bundle unless absolute.
 */
export const POLICY_ANNOTATION = 'io.runbox.enclave.policy';

export interface EnclavePolicy {
  /** The host may exec processes into the container. */
  exec: boolean;
  /** The host may read the container's stdout and stderr (QEMU's stdio ports, or relayed streams). */
  output: boolean;
  /** The host may write to the container's stdin. */
  input: boolean;
}

export const STRICT_POLICY: EnclavePolicy = { exec: false, output: false, input: false };
const KEYS = Object.keys(STRICT_POLICY) as Array<keyof EnclavePolicy>;

/** The policy of a container: its policy file's, or the strict one. What is wrong with a file is named. */
export function containerPolicy(spec: Spec, bundle: string): EnclavePolicy {
  const file = spec.annotations?.[POLICY_ANNOTATION];
  if (file === undefined) return STRICT_POLICY;
  if (file.trimStart().startsWith('{')) return parsePolicy(file, `in ${POLICY_ANNOTATION}`);
  const path = isAbsolute(file) ? file : resolve(bundle, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SpecError(`${POLICY_ANNOTATION}: cannot read the enclave policy ${path}: ${(error as Error).message}`);
  }
  return parsePolicy(text, path);
}

export function parsePolicy(text: string, path: string): EnclavePolicy {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SpecError(`the enclave policy ${path} is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SpecError(`the enclave policy ${path} is not a JSON object`);
  const policy = { ...STRICT_POLICY };
  for (const [key, allowed] of Object.entries(value)) {
    if (!(KEYS as string[]).includes(key)) throw new SpecError(`the enclave policy ${path}: unknown key "${key}" (expected ${KEYS.join(', ')})`);
    if (typeof allowed !== 'boolean') throw new SpecError(`the enclave policy ${path}: "${key}" is not true or false`);
    policy[key as keyof EnclavePolicy] = allowed;
  }
  return policy;
}

/** The policy as the agent takes it (native/agent/PROTOCOL.md, "Enclaves"): one `enclave_allow` per permission. */
export function policyRecords(policy: EnclavePolicy): RecordList {
  return KEYS.filter((key) => policy[key]).map((key) => ['enclave_allow', key]);
}
