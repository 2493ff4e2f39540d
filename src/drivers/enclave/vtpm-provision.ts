// A sandbox's vTPM made ready before its guest runs, as a platform's firmware would leave a real one: the launch
// measured into its PCRs (launch-measurement.ts), then its state stored for the swtpm QEMU drives.
import { TPM_ALG, TPM_CC } from '../../attestation/tpm2-constants.js';
import { PASSWORD, tpmCommand, tpmResponse, TpmWriter } from '../../attestation/tpm2-marshal.js';
import type { MeasuredEvent } from '../../attestation/reference-values.js';
import { SwtpmProvisioner } from './swtpm.js';

/** TPM2_PCR_Extend of one SHA-256 digest. */
export function pcrExtendCommand(pcr: number, digest: Buffer): Buffer {
  return tpmCommand(TPM_CC.PCR_Extend, [pcr], new TpmWriter().u32(1).u16(TPM_ALG.SHA256).bytes(digest).buffer(), [PASSWORD]);
}

/** Makes a new vTPM in `stateDir` with `events` measured, ready for QEMU's swtpm. */
export async function provisionVtpm(stateDir: string, events: MeasuredEvent[]): Promise<void> {
  const swtpm = await SwtpmProvisioner.start(stateDir);
  try {
    for (const event of events) {
      tpmResponse(await swtpm.transmit(pcrExtendCommand(event.pcr, Buffer.from(event.digest, 'hex')), 'TPM2_PCR_Extend'), 0, `measuring the ${event.what} into PCR ${event.pcr}`);
    }
    await swtpm.finish();
  } catch (error) {
    swtpm.kill();
    throw error;
  }
}
