// AMD SEV launch digests computed as the platform computes them for a QEMU guest booted from an OVMF with measured
// direct boot (kernel-hashes=on): the firmware, then QEMU's table of the SHA-256 of the command line (with its
// NUL), the initrd and the kernel (OVMF's GUIDs, in QEMU's target/i386/sev.c layout), then (SEV-ES, SEV-SNP) one
// initial VMSA per vCPU. SEV and SEV-ES hash it all with SHA-256; SEV-SNP chains SHA-384 over each page's
// PAGE_INFO (SNP firmware ABI, "Launch Digest"), the pages and their types given by OVMF's SEV metadata.
import { createHash } from 'node:crypto';
import { AttestationError } from '../errors/errors.js';

const PAGE = 4096;
const FOUR_GB = 0x1_0000_0000;

/** A GUID as UEFI stores it: its first three fields little-endian. */
export function guidBytes(guid: string): Buffer {
  const hex = guid.replaceAll('-', '');
  const b = Buffer.from(hex, 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

const FOOTER_GUID = guidBytes('96b582de-1fb2-45f7-baea-a366c55a082d');
const SEV_HASH_TABLE_RV_GUID = guidBytes('7255371f-3a3b-4b04-927b-1da6efa8d454');
const SEV_ES_RESET_BLOCK_GUID = guidBytes('00f771de-1a7e-4fcb-890e-68c77e2fb44e');
const SEV_METADATA_GUID = guidBytes('dc886566-984a-4798-a75e-5585a7bf67cc');

export enum SnpSection { SecMem = 1, Secrets = 2, Cpuid = 3, SvsmCaa = 4, KernelHashes = 0x10 }

interface MetadataSection { gpa: number; size: number; type: SnpSection }

/** What the launch digest needs of an OVMF: its bytes, the entries of its footer GUID table, its SEV metadata. */
export class Ovmf {
  private readonly table = new Map<string, Buffer>();
  readonly sections: MetadataSection[] = [];

  constructor(readonly data: Buffer) {
    // The table ends 32 bytes before the end of the image, with an entry (u16 size, GUID) naming it.
    const footerStart = data.length - 32 - 18;
    if (footerStart < 0 || !data.subarray(footerStart + 2, footerStart + 18).equals(FOOTER_GUID)) return;
    let end = footerStart;
    const start = footerStart - (data.readUInt16LE(footerStart) - 18);
    while (end - start >= 18) {
      const size = data.readUInt16LE(end - 18);
      if (size < 18 || end - size < start) throw new AttestationError('the OVMF footer table has a bad entry');
      this.table.set(data.subarray(end - 16, end).toString('hex'), data.subarray(end - size, end - 18));
      end -= size;
    }
    const metadata = this.table.get(SEV_METADATA_GUID.toString('hex'));
    if (!metadata) return;
    const at = data.length - metadata.readUInt32LE(0);
    if (data.toString('latin1', at, at + 4) !== 'ASEV' || data.readUInt32LE(at + 8) !== 1) throw new AttestationError('the OVMF SEV metadata is not version 1 "ASEV"');
    for (let i = 0; i < data.readUInt32LE(at + 12); i++) {
      const item = at + 16 + i * 12;
      this.sections.push({ gpa: data.readUInt32LE(item), size: data.readUInt32LE(item + 4), type: data.readUInt32LE(item + 8) });
    }
  }

  private entry(guid: Buffer, what: string): number {
    const value = this.table.get(guid.toString('hex'));
    if (!value) throw new AttestationError(`the OVMF has no ${what} (it is not an AmdSev build)`);
    return value.readUInt32LE(0);
  }

  /** Where QEMU puts the hashes table (the SEV hashes table GUID's address). */
  hashesTableGpa(): number {
    return this.entry(SEV_HASH_TABLE_RV_GUID, 'SEV hashes table');
  }

  /** The APs' reset vector (SEV-ES reset block). */
  resetEip(): number {
    return this.entry(SEV_ES_RESET_BLOCK_GUID, 'SEV-ES reset block');
  }

  /** The image ends at 4 GiB. */
  gpa(): number {
    return FOUR_GB - this.data.length;
  }
}

/** What a measured direct boot hands the guest: the SHA-256 of each, as QEMU hashes them. */
export interface DirectBoot {
  kernel: Buffer;
  initrd: Buffer;
  /** The command line, measured with its NUL. */
  cmdline: string;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();

/** QEMU's padded SEV hashes table (SevHashTable: GUID, length, then cmdline, initrd, kernel entries). */
export function sevHashesTable(boot: DirectBoot): Buffer {
  const entry = (guid: string, hash: Buffer) => {
    const e = Buffer.alloc(50);
    guidBytes(guid).copy(e, 0);
    e.writeUInt16LE(50, 16);
    hash.copy(e, 18);
    return e;
  };
  const table = Buffer.alloc(18 + 3 * 50);
  guidBytes('9438d606-4f22-4cc9-b479-a793d411fd21').copy(table, 0);
  table.writeUInt16LE(table.length, 16);
  entry('97d02dd8-bd20-4c94-aa78-e7714d36ab2a', sha256(Buffer.from(`${boot.cmdline}\0`))).copy(table, 18);
  entry('44baf731-3a2f-4bd7-9af1-41e29169781d', sha256(boot.initrd)).copy(table, 68);
  entry('4de79437-abd2-427f-b835-d5b172d2045b', sha256(boot.kernel)).copy(table, 118);
  return Buffer.concat([table, Buffer.alloc(((table.length + 15) & ~15) - table.length)]);
}

/** The CPUID signature of a vCPU model (its family, model, stepping), as KVM puts it in RDX at reset. */
export function cpuSignature(family: number, model: number, stepping: number): number {
  const [familyLow, familyHigh] = family > 0xf ? [0xf, (family - 0xf) & 0xff] : [family, 0];
  return (familyHigh << 20) | (((model >> 4) & 0xf) << 16) | (familyLow << 8) | ((model & 0xf) << 4) | (stepping & 0xf);
}

/** QEMU's EPYC-v4 (and EPYC): family 23, model 1, stepping 2. */
export const EPYC_V4_SIGNATURE = cpuSignature(23, 1, 2);

/**
 * An initial VMSA (the SEV-ES save area, 4 KiB) as KVM sets it up for a QEMU vCPU at reset at `eip`. Current KVMs
 * write the x87 and SSE control words' reset values into it (`kvmFpu`, as sev-snp-measure's vectors have it); older
 * ones left them zero (as Kata's vectors have it).
 */
export function vmsaPage(eip: number, sevFeatures: bigint, vcpuSignature: number, kvmFpu = true): Buffer {
  const page = Buffer.alloc(PAGE);
  const segment = (offset: number, selector: number, attrib: number, limit: number, base: number) => {
    page.writeUInt16LE(selector, offset);
    page.writeUInt16LE(attrib, offset + 2);
    page.writeUInt32LE(limit, offset + 4);
    page.writeBigUInt64LE(BigInt(base), offset + 8);
  };
  // es cs ss ds fs gs gdtr ldtr idtr tr, 16 bytes each from 0x0
  segment(0x00, 0, 0x93, 0xffff, 0);
  segment(0x10, 0xf000, 0x9b, 0xffff, (eip & 0xffff0000) >>> 0);
  segment(0x20, 0, 0x93, 0xffff, 0);
  segment(0x30, 0, 0x93, 0xffff, 0);
  segment(0x40, 0, 0x93, 0xffff, 0);
  segment(0x50, 0, 0x93, 0xffff, 0);
  segment(0x60, 0, 0, 0xffff, 0);
  segment(0x70, 0, 0x82, 0xffff, 0);
  segment(0x80, 0, 0, 0xffff, 0);
  segment(0x90, 0, 0x8b, 0xffff, 0);
  const u64 = (offset: number, value: number | bigint) => page.writeBigUInt64LE(BigInt(value), offset);
  u64(0xd0, 0x1000); // EFER: KVM sets SVME
  u64(0x148, 0x40); // CR4: MCE
  u64(0x158, 0x10); // CR0
  u64(0x160, 0x400); // DR7
  u64(0x168, 0xffff0ff0); // DR6
  u64(0x170, 0x2); // RFLAGS
  u64(0x178, eip & 0xffff); // RIP
  u64(0x268, 0x0007040600070406n); // G_PAT: the PAT MSR's reset value
  u64(0x310, vcpuSignature); // RDX
  u64(0x3b0, sevFeatures);
  u64(0x3e8, 0x1); // XCR0
  if (kvmFpu) {
    page.writeUInt32LE(0x1f80, 0x408); // MXCSR
    page.writeUInt16LE(0x37f, 0x410); // x87 FCW
  }
  return page;
}

/** The first vCPU starts at the reset vector, the others at OVMF's SEV-ES AP reset address. */
function vmsas(ovmf: Ovmf, vcpus: number, sevFeatures: bigint, signature: number, kvmFpu = true): Buffer[] {
  const ap = vcpus > 1 ? ovmf.resetEip() : 0;
  return Array.from({ length: vcpus }, (_, i) => vmsaPage(i === 0 ? 0xfffffff0 : ap, sevFeatures, signature, kvmFpu));
}

/** SEV: SHA-256 of the firmware and the hashes table. */
export function sevLaunchDigest(ovmf: Ovmf, boot?: DirectBoot): Buffer {
  const hash = createHash('sha256').update(ovmf.data);
  if (boot) hash.update(sevHashesTable(boot));
  return hash.digest();
}

/** SEV-ES: SEV's, then each vCPU's VMSA (`kvmFpu`: see vmsaPage). */
export function sevEsLaunchDigest(ovmf: Ovmf, vcpus: number, signature: number, boot?: DirectBoot, kvmFpu = true): Buffer {
  const hash = createHash('sha256').update(ovmf.data);
  if (boot) hash.update(sevHashesTable(boot));
  for (const page of vmsas(ovmf, vcpus, 0n, signature, kvmFpu)) hash.update(page);
  return hash.digest();
}

/** The SNP guest context's launch digest: SHA-384 over each page's PAGE_INFO, chained. */
export class SnpLaunchDigest {
  constructor(private digest: Buffer = Buffer.alloc(48)) {}

  private page(type: number, gpa: number, contents: Buffer): void {
    const info = Buffer.alloc(0x70);
    this.digest.copy(info, 0);
    contents.copy(info, 48);
    info.writeUInt16LE(0x70, 96);
    info.writeUInt8(type, 98); // then IMI 0, the VMPL permissions 0
    info.writeBigUInt64LE(BigInt(gpa), 104);
    this.digest = createHash('sha384').update(info).digest();
  }

  normal(gpa: number, data: Buffer): void {
    for (let at = 0; at < data.length; at += PAGE) this.page(0x01, gpa + at, createHash('sha384').update(data.subarray(at, at + PAGE)).digest());
  }

  vmsa(data: Buffer): void {
    // A VMSA's GPA in the RMP is -1, page-aligned, bits above 51 clear.
    this.page(0x02, 0xfffffffff000, createHash('sha384').update(data).digest());
  }

  special(type: 0x03 | 0x05 | 0x06, gpa: number, size = PAGE): void {
    for (let at = 0; at < size; at += PAGE) this.page(type, gpa + at, Buffer.alloc(48));
  }

  value(): Buffer {
    return this.digest;
  }
}

/** The SNP launch MEASUREMENT of a QEMU guest; `ovmfDigest` stands for the firmware's pages when it is known. */
export function snpLaunchDigest(
  ovmf: Ovmf, vcpus: number, signature: number, sevFeatures: bigint, boot?: DirectBoot, ovmfDigest?: Buffer,
): Buffer {
  const gctx = new SnpLaunchDigest(ovmfDigest);
  if (!ovmfDigest) gctx.normal(ovmf.gpa(), ovmf.data);
  for (const section of ovmf.sections) {
    switch (section.type) {
      case SnpSection.SecMem:
      case SnpSection.SvsmCaa:
        gctx.special(0x03, section.gpa, section.size);
        break;
      case SnpSection.Secrets:
        gctx.special(0x05, section.gpa);
        break;
      case SnpSection.Cpuid:
        gctx.special(0x06, section.gpa);
        break;
      case SnpSection.KernelHashes: {
        if (!boot) {
          gctx.special(0x03, section.gpa, section.size);
          break;
        }
        const page = Buffer.alloc(section.size);
        sevHashesTable(boot).copy(page, ovmf.hashesTableGpa() & (PAGE - 1));
        gctx.normal(section.gpa, page);
        break;
      }
      default:
        throw new AttestationError(`the OVMF SEV metadata has a section of unknown type ${section.type}`);
    }
  }
  if (boot && !ovmf.sections.some((section) => section.type === SnpSection.KernelHashes)) {
    throw new AttestationError('the OVMF has no SNP kernel hashes section: it cannot measure a direct boot');
  }
  for (const page of vmsas(ovmf, vcpus, sevFeatures, signature)) gctx.vmsa(page);
  return gctx.value();
}
