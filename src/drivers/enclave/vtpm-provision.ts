// A sandbox's vTPM made ready before its guest runs, as a platform's maker and firmware would leave a real one:
// its endorsement key certified by this host's vTPM CA (the certificate in NV at the TCG's index for an ECC P-256
// EK), the launch measured into its PCRs (launch-measurement.ts), then its state stored for the swtpm QEMU drives.
import { TPM_ALG, TPM_CC, TPM_RH, TPMA_NV } from '../../attestation/tpm2-constants.js';
import { PASSWORD, tpmCommand, tpmResponse, TpmWriter } from '../../attestation/tpm2-marshal.js';
import type { MeasuredEvent } from '../../attestation/reference-values.js';
import { ekTemplate, publicKeyOf, readSizedPublic, sizedPublic } from '../../attestation/tpm2-public.js';
import { SwtpmProvisioner } from './swtpm.js';
import { ekCa, ekCertificate, type EkCa } from './vtpm-ek-ca.js';

/** Where the EK certificate of an ECC NIST P-256 EK is kept (TCG EK Credential Profile 2.0). */
export const EK_CERT_NV_INDEX = 0x01c0000a;
/** The most an NV write or read carries in one command here (swtpm's MAX_NV_BUFFER_SIZE is 1024). */
const NV_CHUNK = 768;

/** TPM2_PCR_Extend of one SHA-256 digest. */
export function pcrExtendCommand(pcr: number, digest: Buffer): Buffer {
  return tpmCommand(TPM_CC.PCR_Extend, [pcr], new TpmWriter().u32(1).u16(TPM_ALG.SHA256).bytes(digest).buffer(), [PASSWORD]);
}

async function run(swtpm: SwtpmProvisioner, command: Buffer, what: string, handles = 0) {
  return tpmResponse(await swtpm.transmit(command, what), handles, what);
}

/** The EK (TPM2_CreatePrimary from the EK template: the TPM makes the same key whenever asked) and its certificate. */
async function certifyEk(swtpm: SwtpmProvisioner, ca: EkCa): Promise<void> {
  const template = new TpmWriter().u16(4).u16(0).u16(0).bytes(sizedPublic(ekTemplate())).u16(0).u32(0).buffer();
  const created = await run(swtpm, tpmCommand(TPM_CC.CreatePrimary, [TPM_RH.ENDORSEMENT], template, [PASSWORD]), 'TPM2_CreatePrimary (the EK)', 1);
  const ek = readSizedPublic(new TpmWriter().sized(created.params.sized()).buffer());
  await run(swtpm, tpmCommand(TPM_CC.FlushContext, [], new TpmWriter().u32(created.handles[0]!).buffer()), 'TPM2_FlushContext');
  const cert = ekCertificate(ca, publicKeyOf(ek));
  const attributes = TPMA_NV.PPWRITE | TPMA_NV.WRITEDEFINE | TPMA_NV.PPREAD | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA
    | TPMA_NV.PLATFORMCREATE;
  const nvPublic = new TpmWriter().u32(EK_CERT_NV_INDEX).u16(TPM_ALG.SHA256).u32(attributes).sized(Buffer.alloc(0)).u16(cert.length).buffer();
  await run(swtpm, tpmCommand(TPM_CC.NV_DefineSpace, [TPM_RH.PLATFORM], new TpmWriter().sized(Buffer.alloc(0)).sized(nvPublic).buffer(), [PASSWORD]),
    'TPM2_NV_DefineSpace (the EK certificate)');
  for (let offset = 0; offset < cert.length; offset += NV_CHUNK) {
    const chunk = cert.subarray(offset, offset + NV_CHUNK);
    await run(swtpm, tpmCommand(TPM_CC.NV_Write, [TPM_RH.PLATFORM, EK_CERT_NV_INDEX], new TpmWriter().sized(chunk).u16(offset).buffer(), [PASSWORD]),
      'TPM2_NV_Write (the EK certificate)');
  }
}

/** Makes a new vTPM in `stateDir`: its EK certified, `events` measured, ready for QEMU's swtpm. */
export async function provisionVtpm(stateDir: string, events: MeasuredEvent[]): Promise<void> {
  const ca = await ekCa();
  const swtpm = await SwtpmProvisioner.start(stateDir);
  try {
    await certifyEk(swtpm, ca);
    for (const event of events) {
      await run(swtpm, pcrExtendCommand(event.pcr, Buffer.from(event.digest, 'hex')), `measuring the ${event.what} into PCR ${event.pcr}`);
    }
    await swtpm.finish();
  } catch (error) {
    swtpm.kill();
    throw error;
  }
}
