// A resolved seccomp filter (src/oci/seccomp.ts) as the agent's `seccomp_*` records (PROTOCOL.md, `create`).
import type { SeccompFilter } from '../oci/seccomp.js';
import { UNIT_SEPARATOR as US, type RecordList } from './agent-records.js';

export function seccompRecords(filter: SeccompFilter | undefined): RecordList {
  if (!filter) return [];
  const records: RecordList = [['seccomp_default', String(filter.defaultAction)], ['seccomp_flags', String(filter.flags)]];
  for (const arch of filter.architectures) records.push(['seccomp_arch', arch]);
  for (const rule of filter.rules) {
    records.push(['seccomp_syscall', `${rule.name}${US}${rule.action}`]);
    for (const arg of rule.args) records.push(['seccomp_arg', [arg.index, arg.op, arg.value, arg.valueTwo].join(US)]);
  }
  return records;
}
