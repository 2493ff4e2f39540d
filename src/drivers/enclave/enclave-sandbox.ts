// An enclave's container as a Sandbox: the qemu driver's, with the enclave's records in its create request (the
// policy, the secrets to fetch) and its rootfs at a path that names no container id, so that the request the guest
// measures is the same for every run of a bundle (initdata.ts).
import type { AgentClient } from '../../agent-client/agent-client.js';
import type { RecordList } from '../../agent-client/agent-records.js';
import type { Spec } from '../../oci/spec.js';
import type { ContainerConfig } from '../../sandbox/driver.js';
import { ROOTFS_FSTYPE } from '../qemu/rootfs-image.js';
import { QemuSandbox, type QemuHandle } from '../qemu/qemu-sandbox.js';
import { containerPolicy, policyRecords } from './enclave-policy.js';
import { requestedSecrets, secretRecords } from './enclave-secrets.js';

/** An enclave VM runs one container, here. */
export const ENCLAVE_GUEST_ROOTFS = '/run/runbox/enclave/rootfs';

export class EnclaveSandbox extends QemuSandbox {
  protected override rootfsInGuest(): string {
    return ENCLAVE_GUEST_ROOTFS;
  }

  protected override createRequest(config: ContainerConfig): RecordList {
    return [
      ...super.createRequest(config),
      ...policyRecords(containerPolicy(config.spec, config.bundle)),
      ...secretRecords(requestedSecrets(config.spec.annotations)),
    ];
  }

  /** The create request a container of this bundle would send, for its measurement (nothing is sent). */
  static createRecordsFor(spec: Spec, bundle: string): RecordList {
    const handle: QemuHandle = { driver: 'enclave', pid: 0, startTime: '', dir: '', agentPorts: 0, accel: 'tcg', rootfsFstype: ROOTFS_FSTYPE };
    const unused = async () => {};
    return new EnclaveSandbox(handle, undefined as unknown as AgentClient, unused, unused).createRequest({ id: 'measured', bundle, spec, stdio: 'null' });
  }
}
