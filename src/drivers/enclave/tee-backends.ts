// The TEEs behind the enclave driver, and what this host gives of each: `vtpm` (one swtpm per sandbox, measured direct
// boot; runs wherever swtpm and QEMU do), `snp` (AMD SEV-SNP: QEMU 9.1's sev-snp-guest, KVM's SEV-SNP, an AmdSev
// OVMF) and `tdx` (Intel TDX: QEMU's tdx-guest, KVM's TDX, a TDVF). The key broker verifies all three kinds of
// evidence; this driver launches vtpm guests only, and says so rather than claim more.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { TeeType } from '../../attestation/reference-values.js';
import { QEMU_BINARY } from '../qemu/qemu-command.js';
import { SWTPM_BINARY } from './swtpm.js';

export interface TeeAvailability {
  available: boolean;
  /** What the host has and lacks, in words. */
  why: string;
}

/** The AmdSev OVMF (kernel-hashes) an SNP guest boots, and the TDVF a TD boots: Debian ships neither. */
export const SNP_OVMF = process.env.RUNBOX_ENCLAVE_SNP_OVMF;
export const TDVF = process.env.RUNBOX_ENCLAVE_TDVF;

let qemuObjects: { version: string; types: Set<string> } | undefined;

/** QEMU's version and the object types it can make (`-object help`), asked once per process. */
function qemu(): { version: string; types: Set<string> } {
  if (!qemuObjects) {
    const version = /version (\S+)/.exec(spawnSync(QEMU_BINARY, ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? 'unknown';
    const help = spawnSync(QEMU_BINARY, ['-machine', 'none', '-object', 'help'], { encoding: 'utf8' }).stdout ?? '';
    qemuObjects = { version, types: new Set(help.split('\n').map((line) => line.trim())) };
  }
  return qemuObjects;
}

function kvmParameter(module: string, name: string): string | undefined {
  try {
    return readFileSync(`/sys/module/${module}/parameters/${name}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function onPath(binary: string): boolean {
  return binary.includes('/') ? existsSync(binary) : (process.env.PATH ?? '').split(':').some((dir) => existsSync(`${dir}/${binary}`));
}

const LAUNCH_NOT_BUILT = 'and runbox launches only vtpm enclaves: an SNP or TDX guest (q35 with that firmware, the attester reading '
  + '/dev/sev-guest or the TDX report device) is not built';

export function teeAvailability(tee: TeeType): TeeAvailability {
  if (tee === 'vtpm') {
    const missing = [SWTPM_BINARY, 'setpriv'].filter((binary) => !onPath(binary));
    return missing.length
      ? { available: false, why: `${missing.join(' and ')} not found (Debian's swtpm and util-linux; npm run setup installs them)` }
      : { available: true, why: 'one swtpm per sandbox; the launch measured into PCRs 4, 9, 12 before the guest runs, the initdata into PCR 8 by the guest' };
  }
  const { version, types } = qemu();
  const lacks: string[] = [];
  if (tee === 'snp') {
    if (!types.has('sev-snp-guest')) lacks.push(`QEMU ${version} has no sev-snp-guest object (SEV-SNP guests need QEMU 9.1 or later)`);
    if (kvmParameter('kvm_amd', 'sev_snp') !== 'Y') lacks.push('KVM offers no SEV-SNP (/sys/module/kvm_amd/parameters/sev_snp is not Y)');
    if (!SNP_OVMF || !existsSync(SNP_OVMF)) lacks.push('there is no AmdSev OVMF (RUNBOX_ENCLAVE_SNP_OVMF; Debian\'s OVMF has no SEV build)');
  } else {
    if (!types.has('tdx-guest')) lacks.push(`QEMU ${version} has no tdx-guest object`);
    if (kvmParameter('kvm_intel', 'tdx') !== 'Y') lacks.push('KVM offers no TDX (/sys/module/kvm_intel/parameters/tdx is not Y)');
    if (!TDVF || !existsSync(TDVF)) lacks.push('there is no TDVF (RUNBOX_ENCLAVE_TDVF)');
  }
  return { available: false, why: lacks.length ? `${lacks.join('; ')}; ${LAUNCH_NOT_BUILT}` : `this host has what it takes, ${LAUNCH_NOT_BUILT}` };
}
