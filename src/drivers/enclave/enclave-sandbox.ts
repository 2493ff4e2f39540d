// An enclave's container as a Sandbox: the qemu driver's, with the enclave's records in its create request (the
// policy, the secrets to fetch) and its rootfs at a path that names no container id, so that the request the guest
// measures is the same for every run of a bundle (initdata.ts).
import type { AgentClient } from '../../agent-client/agent-client.js';
import { UNIT_SEPARATOR, type RecordList } from '../../agent-client/agent-records.js';
import type { Spec } from '../../oci/spec.js';
import type { ContainerConfig } from '../../sandbox/driver.js';
import { ROOTFS_FSTYPE } from '../qemu/rootfs-image.js';
import { QemuSandbox, ROOTFS_DEVICE, type QemuHandle } from '../qemu/qemu-sandbox.js';
import { containerPolicy, policyRecords } from './enclave-policy.js';
import { requestedSecrets, secretRecords } from './enclave-secrets.js';
import { readVerity, verityRecord, type RootfsVerity } from './rootfs-verity.js';
import { SandboxError } from '../../errors/errors.js';

/** An enclave VM runs one container, here. */
export const ENCLAVE_GUEST_ROOTFS = '/run/runbox/enclave/rootfs';

export class EnclaveSandbox extends QemuSandbox {
  /** The rootfs image's dm-verity parameters: those the driver kept beside the VM's disk, or a measurement's. */
  private verity: RootfsVerity | undefined;

  protected override rootfsInGuest(): string {
    return ENCLAVE_GUEST_ROOTFS;
  }

  protected override createRequest(config: ContainerConfig): RecordList {
    const verity = this.verity ?? readVerity(this.handle.dir);
    if (!verity) throw new SandboxError('the rootfs image has no dm-verity hash tree (it was not built by the enclave driver)', { containerId: config.id });
    return [
      ...super.createRequest(config),
      ['rootfs_verity', verityRecord(verity)],
      ...policyRecords(containerPolicy(config.spec, config.bundle)),
      ...secretRecords(requestedSecrets(config.spec.annotations)),
    ];
  }

  /** The create request a container of this bundle would send, for its measurement (nothing is sent). */
  static createRecordsFor(spec: Spec, bundle: string, verity: RootfsVerity): RecordList {
    const handle: QemuHandle = { driver: 'enclave', pid: 0, startTime: '', dir: '', agentPorts: 0, accel: 'tcg', rootfsFstype: ROOTFS_FSTYPE };
    const unused = async () => {};
    const sandbox = new EnclaveSandbox(handle, undefined as unknown as AgentClient, unused, unused);
    sandbox.verity = verity;
    // What createContainer adds for the VM's first (and, in an enclave, only) container: its boot image.
    sandbox.guestRecords.set('measured', [['rootfs_image', `${ROOTFS_DEVICE}${UNIT_SEPARATOR}${ROOTFS_FSTYPE}`]]);
    return sandbox.createRequest({ id: 'measured', bundle, spec, stdio: 'null' });
  }
}
