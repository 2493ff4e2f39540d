// process.apparmorProfile, process.selinuxLabel and linux.mountLabel as agent records (PROTOCOL.md,
// `apparmor_profile`, `selinux_label`, `mount`), or refused where the sandbox's kernel cannot apply them: runc
// fails such a config too (it cannot write the profile or label), and its SELinux message is kept.
import type { Process, Spec } from '../oci/spec.js';
import type { RecordList } from './agent-records.js';
import { SandboxError } from '../errors/errors.js';

/** Where the agent runs: true where its kernel enforces the module, else why it cannot. */
export interface LsmSupport {
  appArmor: true | string;
  selinux: true | string;
}

export function processLsmRecords(process: Process, lsm: LsmSupport): RecordList {
  const records: RecordList = [];
  if (process.apparmorProfile) {
    if (lsm.appArmor !== true) throw new SandboxError(`AppArmor profile "${process.apparmorProfile}" cannot be applied: ${lsm.appArmor}`);
    records.push(['apparmor_profile', process.apparmorProfile]);
  }
  if (process.selinuxLabel) {
    if (lsm.selinux !== true) throw new SandboxError(`selinux label is specified in config, but selinux is disabled or not supported: ${lsm.selinux}`);
    records.push(['selinux_label', process.selinuxLabel]);
  }
  return records;
}

export function checkMountLabel(spec: Spec, lsm: LsmSupport): void {
  if (spec.linux?.mountLabel && lsm.selinux !== true) {
    throw new SandboxError(`linux.mountLabel "${spec.linux.mountLabel}" cannot be applied: selinux is disabled or not supported: ${lsm.selinux}`);
  }
}
