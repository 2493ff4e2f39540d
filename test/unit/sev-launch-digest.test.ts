// AMD SEV, SEV-ES and SEV-SNP launch digests against published vectors: Kata Containers' pkg/sev tests (SEV and
// SEV-ES with kernel hashes) and virtee/sev-snp-measure's (SEV-ES and SEV-SNP, with and without a direct boot), on
// the OVMF tails those projects publish (test/vectors/README.md).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { EPYC_V4_SIGNATURE, Ovmf, sevEsLaunchDigest, sevLaunchDigest, snpLaunchDigest, type DirectBoot } from '../../src/attestation/sev-launch-digest.js';

const vector = (name: string) => readFileSync(new URL(`../../../test/vectors/${name}`, import.meta.url));
const kataOvmf = new Ovmf(vector('kata-ovmf-suffix.bin'));
const amdSevOvmf = new Ovmf(vector('snp-measure-ovmf-amdsev-suffix.bin'));
/** /dev/null as kernel and initrd, with this command line. */
const emptyBoot = (cmdline = ''): DirectBoot => ({ kernel: Buffer.alloc(0), initrd: Buffer.alloc(0), cmdline });

test('SEV and SEV-ES launch digests are Kata\'s pkg/sev vectors', (t) => {
  t.is(sevLaunchDigest(kataOvmf).toString('hex'), 'b184e06e012366fd7b33ebfb361a515d05f00d354dca07b36abbc1e1e177ced5');
  t.is(sevLaunchDigest(kataOvmf, emptyBoot()).toString('hex'), 'd59d7696efd7facfaa653758586e6120c4b6eaec3e327771d278cc6a44786ba5');
  // Kata's VMSAs are those of an older KVM, which left the FPU control words zero.
  t.is(sevEsLaunchDigest(kataOvmf, 1, EPYC_V4_SIGNATURE, emptyBoot(), false).toString('hex'), '7e5c26fb454621eb466978b4d0242b3c04b44a034de7fc0a2d8dac60ea2b6403');
  t.is(sevEsLaunchDigest(kataOvmf, 4, EPYC_V4_SIGNATURE, emptyBoot(), false).toString('hex'), 'b2111b0051fc3a06ec216899b2c78da99fb9d56c6ff2e8261dd3fe6cff79ecbc');
});

test('SEV-ES and SEV-SNP launch digests are sev-snp-measure\'s vectors', (t) => {
  t.is(sevEsLaunchDigest(amdSevOvmf, 1, EPYC_V4_SIGNATURE, emptyBoot()).toString('hex'), '13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c');
  t.is(sevEsLaunchDigest(amdSevOvmf, 4, EPYC_V4_SIGNATURE, emptyBoot()).toString('hex'), '0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91');
  const ovmfDigest = Buffer.from('086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74', 'hex');
  t.deepEqual(snpLaunchDigest(amdSevOvmf, 1, EPYC_V4_SIGNATURE, 0x21n, emptyBoot(), ovmfDigest).toString('hex'),
    '329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198');
  t.deepEqual(snpLaunchDigest(amdSevOvmf, 1, EPYC_V4_SIGNATURE, 0x1n, emptyBoot(), ovmfDigest).toString('hex'),
    'ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5');
  // The firmware's own pages hashed here, and a command line.
  t.deepEqual(snpLaunchDigest(amdSevOvmf, 1, EPYC_V4_SIGNATURE, 0x21n, emptyBoot('console=ttyS0 loglevel=7')).toString('hex'),
    '803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977');
  t.deepEqual(snpLaunchDigest(amdSevOvmf, 1, EPYC_V4_SIGNATURE, 0x1n, emptyBoot('console=ttyS0 loglevel=7')).toString('hex'),
    '6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa');
  // Without a direct boot: the hashes page is a zero page.
  t.deepEqual(snpLaunchDigest(amdSevOvmf, 1, EPYC_V4_SIGNATURE, 0x1n).toString('hex'),
    '19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d');
});
