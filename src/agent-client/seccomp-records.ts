// A resolved seccomp filter (src/oci/seccomp.ts) as the agent's `seccomp_*` records (PROTOCOL.md, `create`).
import type { SeccompFilter } from '../oci/seccomp.js';
import { OCI_VERSION } from '../oci/spec.js';
import { UNIT_SEPARATOR as US, type RecordList } from './agent-records.js';

/** What the container process state sent to a seccomp agent says of the container, besides its status and pid. */
export interface ListenerContainer {
  id: string;
  bundle: string;
  annotations?: Record<string, string>;
}

/**
 * The ContainerProcessState (runtime-spec runtime.md) for the seccomp agent, less its last two closing braces:
 * `state` is its last member and lacks `status` and `pid`, which the agent adds with the process's own `pid`.
 */
function listenerState(metadata: string, container: ListenerContainer): string {
  const state = { ociVersion: OCI_VERSION, id: container.id, bundle: container.bundle, annotations: container.annotations ?? {} };
  const text = JSON.stringify({ ociVersion: OCI_VERSION, fds: ['seccompFd'], ...(metadata ? { metadata } : {}), state });
  return text.slice(0, -2);
}

export function seccompRecords(filter: SeccompFilter | undefined, container: ListenerContainer): RecordList {
  if (!filter) return [];
  const records: RecordList = [['seccomp_default', String(filter.defaultAction)], ['seccomp_flags', String(filter.flags)]];
  for (const arch of filter.architectures) records.push(['seccomp_arch', arch]);
  for (const rule of filter.rules) {
    records.push(['seccomp_syscall', `${rule.name}${US}${rule.action}`]);
    for (const arg of rule.args) records.push(['seccomp_arg', [arg.index, arg.op, arg.value, arg.valueTwo].join(US)]);
  }
  if (filter.listener) {
    records.push(['seccomp_listener', filter.listener.path], ['seccomp_listener_state', listenerState(filter.listener.metadata, container)]);
  }
  return records;
}
