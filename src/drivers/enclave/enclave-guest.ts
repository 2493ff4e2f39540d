// What an enclave VM boots: the qemu driver's guest kernel, the enclave initramfs (the agent, the attester, the
// kernel's crypto modules: scripts/guest/build-initramfs.sh --enclave), and the kernel parameters with the TPM's. These
// are the very files and words the launch measurement covers, for the driver and `runbox enclave measure` alike.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SandboxError, SpecError } from '../../errors/errors.js';
import type { Spec } from '../../oci/spec.js';
import { GUEST_DIR, guestAssets } from '../qemu/guest-assets.js';

/** config.json's annotation with kernel parameters to add to an enclave's (measured: they change PCR 12). */
export const KERNEL_PARAMS_ANNOTATION = 'io.runbox.enclave.kernel-params';

export interface EnclaveLaunch {
  kernel: string;
  initrd: string;
  cmdline: string[];
}

export function enclaveInitrd(): string {
  return resolve(process.env.RUNBOX_ENCLAVE_INITRD ?? join(GUEST_DIR, 'enclave-initrd.img'));
}

/**
 * microvm's ACPI tables have no TPM2 table (QEMU 7.2): the TIS driver is told the TPM is there, and to poll it,
 * as its interrupt is not described either.
 */
const TPM_PARAMS = ['tpm_tis.force=1', 'tpm_tis.interrupts=0'];

/** The kernel, initramfs and parameters an enclave for `spec` boots; throws (naming it) when one is missing. */
export function enclaveLaunch(spec: Spec): EnclaveLaunch {
  const assets = guestAssets();
  const extra = spec.annotations?.[KERNEL_PARAMS_ANNOTATION]?.trim();
  if (extra !== undefined && /[\0\n]/.test(extra)) throw new SpecError(`${KERNEL_PARAMS_ANNOTATION}: kernel parameters are one line`);
  const initrd = enclaveInitrd();
  if (!existsSync(initrd)) throw new SandboxError(`the enclave initramfs is missing (${initrd}): run \`npm run build\` (scripts/guest/build-initramfs.sh --enclave)`);
  return {
    kernel: resolve(process.env.RUNBOX_QEMU_KERNEL ?? assets.kernel),
    initrd,
    cmdline: [...assets.cmdline, ...TPM_PARAMS, ...(extra ? extra.split(/\s+/) : [])],
  };
}
