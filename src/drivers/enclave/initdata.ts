// An enclave's initdata: what its guest is told at launch and acts on, measured into PCR 8 before it acts. It is the
// create request as the guest receives it (config.json resolved to the agent's records, the policy, the secrets
// asked for), less the records that name this one invocation: the op, the container id, where its stdio goes
// (which the policy rules on), whether hooks follow, and the name of its cgroup (containerd puts the container id
// in it; in the guest the container is the only one). The agent computes the same bytes (native/agent/enclave.c).
import { encodeRecords, type RecordList } from '../../agent-client/agent-records.js';
import { sha256 } from '../../attestation/pcr-bank.js';
import { INITDATA_UNMEASURED_RECORDS } from '../../generated/facts.js';

const UNMEASURED_RECORDS: ReadonlySet<string> = new Set(INITDATA_UNMEASURED_RECORDS);

/** The initdata bytes of a create request: its measured records, in order, encoded as the protocol sends them. */
export function initdataOf(records: RecordList): Buffer {
  return encodeRecords(records.filter(([key]) => !UNMEASURED_RECORDS.has(key)));
}

export function initdataDigest(records: RecordList): Buffer {
  return sha256(initdataOf(records));
}
