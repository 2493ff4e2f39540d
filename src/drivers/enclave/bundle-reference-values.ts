// The reference values of a bundle's enclave on this host (`runbox enclave measure BUNDLE`): the launch this host
// would measure (its kernel, enclave initramfs and command line, config.json's annotations included) and the
// initdata its guest would measure, computed by the very code the driver runs.
import { resolve } from 'node:path';
import { SpecError } from '../../errors/errors.js';
import type { ReferenceValues } from '../../attestation/reference-values.js';
import { loadSpec } from '../../oci/load-spec.js';
import { enclaveLaunch } from './enclave-guest.js';
import { EnclaveSandbox } from './enclave-sandbox.js';
import { requestedSecrets } from './enclave-secrets.js';
import { chosenTee, TEE_ANNOTATION } from './enclave-tee.js';
import { initdataDigest } from './initdata.js';
import { vtpmReferenceValues } from './launch-measurement.js';
import { rootfsVerity } from './rootfs-verity.js';
import { teeAvailability } from './tee-backends.js';

export async function bundleReferenceValues(bundleDir: string): Promise<ReferenceValues> {
  const bundle = resolve(bundleDir);
  const spec = loadSpec(bundle);
  const tee = chosenTee(spec);
  const availability = teeAvailability(tee);
  if (tee !== 'vtpm' || !availability.available) {
    throw new SpecError(`${TEE_ANNOTATION}=${tee}: this host cannot launch it, so it cannot say what it would measure: ${availability.why}`);
  }
  const initdata = initdataDigest(EnclaveSandbox.createRecordsFor(spec, bundle, await rootfsVerity(spec.root!.path)));
  return vtpmReferenceValues(enclaveLaunch(spec), initdata, requestedSecrets(spec.annotations).map((secret) => secret.resource));
}
