// A container's state as runc reports it (`state`, `list`, and the JSON its hooks get on stdin).
import { hrtime } from 'node:process';
import type { State, Status } from '../oci/spec.js';
import type { ContainerRecord } from './state-store.js';

/** The runtime-spec state plus runc's extra fields, in runc's order. */
export interface StateReport extends State {
  rootfs: string;
  created: string;
  owner: string;
}

export function stateReport(record: ContainerRecord, status: Status): StateReport {
  return {
    ociVersion: record.ociVersion,
    id: record.id,
    pid: status === 'stopped' ? 0 : record.pid,
    status,
    bundle: record.bundle,
    rootfs: record.rootfs,
    created: record.created,
    owner: record.owner,
    annotations: record.annotations ?? {},
  };
}

/** Now, as runc writes a container's `created`: RFC 3339 with nanoseconds. */
export function rfc3339Nano(): string {
  const now = Date.now();
  const nanos = String(now % 1000 * 1_000_000 + Number(hrtime.bigint() % 1_000_000n)).padStart(9, '0');
  return new Date(now).toISOString().replace(/\.\d{3}Z$/, `.${nanos}Z`);
}
