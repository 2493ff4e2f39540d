// Which TEE an enclave runs on: config.json's io.runbox.enclave.tee, `vtpm` unless it says otherwise.
import { SpecError } from '../../errors/errors.js';
import { TEE_TYPES, type TeeType } from '../../attestation/reference-values.js';
import type { Spec } from '../../oci/spec.js';

export const TEE_ANNOTATION = 'io.runbox.enclave.tee';

export function chosenTee(spec: Spec): TeeType {
  const tee = spec.annotations?.[TEE_ANNOTATION] ?? 'vtpm';
  if (!(TEE_TYPES as readonly string[]).includes(tee)) throw new SpecError(`${TEE_ANNOTATION}: "${tee}" is not a TEE runbox knows (${TEE_TYPES.join(', ')})`);
  return tee as TeeType;
}
