// How an enclave's launch is measured into its vTPM, in the manner of measured direct boot (SEV's kernel-hashes, a
// UEFI stub's PCRs): before QEMU runs, the driver extends the SHA-256 of the kernel into PCR 4, of the initramfs
// into PCR 9 and of the command line (with its NUL, as QEMU hands it over) into PCR 12; the guest agent extends the
// initdata digest into PCR 8 before it acts on the create request. The same computation gives the reference values.
import { pcrAfter, sha256 } from '../../attestation/pcr-bank.js';
import type { MeasuredEvent, ReferenceValues } from '../../attestation/reference-values.js';
import { fileSha256 } from './file-digest.js';
import type { EnclaveLaunch } from './enclave-guest.js';

export const PCR_KERNEL = 4;
export const PCR_INITDATA = 8;
export const PCR_INITRD = 9;
export const PCR_CMDLINE = 12;

/**
 * The PCRs a quote covers and the verifier checks: the static ones (0-15), less PCR 10, which the guest kernel's IMA
 * extends with its boot aggregate (a hash of PCRs 0-9 at that moment, so nothing new).
 */
export const QUOTED_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15];

/** The kernel command line as QEMU's -append hands it to the guest, with its NUL. */
export function cmdlineBytes(cmdline: string[]): Buffer {
  return Buffer.from(`${cmdline.join(' ')}\0`, 'utf8');
}

/** The measurements the driver makes before QEMU starts, in order. */
export function launchEvents(launch: EnclaveLaunch): MeasuredEvent[] {
  return [
    { pcr: PCR_KERNEL, digest: fileSha256(launch.kernel).toString('hex'), what: `kernel ${launch.kernel}` },
    { pcr: PCR_INITRD, digest: fileSha256(launch.initrd).toString('hex'), what: `initrd ${launch.initrd}` },
    { pcr: PCR_CMDLINE, digest: sha256(cmdlineBytes(launch.cmdline)).toString('hex'), what: `kernel command line "${launch.cmdline.join(' ')}"` },
  ];
}

/** The reference values of a guest that boots `launch` and is given `initdata`, asking for `resources`. */
export function vtpmReferenceValues(launch: EnclaveLaunch, initdata: Buffer, resources: string[]): ReferenceValues {
  const events: MeasuredEvent[] = [
    ...launchEvents(launch),
    { pcr: PCR_INITDATA, digest: initdata.toString('hex'), what: 'initdata: the create request and policy the guest was given' },
  ];
  const pcrs: Record<string, string> = {};
  for (const index of QUOTED_PCRS) {
    pcrs[String(index)] = pcrAfter(events.filter((event) => event.pcr === index).map((event) => Buffer.from(event.digest, 'hex'))).toString('hex');
  }
  return { tee: 'vtpm', pcrs, events, initdata: initdata.toString('hex'), resources };
}
