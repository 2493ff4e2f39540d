// A container's state.json as read back: checked field by field, and against the directory it is in, before the
// runtime acts on it. A file that fails (truncated, garbage, `{}`, another container's copied in) is reported
// naming the container and the file; `delete --force` still ends what the container's directory holds.
import { StateDamageError } from '../errors/errors.js';

const STATUSES = new Set(['creating', 'created', 'running', 'paused', 'stopped']);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The first field of a record that is not what Runtime writes, in words; undefined when there is none. */
function wrongField(record: Record<string, unknown>): string | undefined {
  for (const name of ['ociVersion', 'bundle', 'rootfs', 'created', 'owner', 'driver'] as const) {
    if (typeof record[name] !== 'string') return `"${name}" is not a string`;
  }
  if (typeof record.status !== 'string' || !STATUSES.has(record.status)) return `"status" is not one of ${[...STATUSES].join(', ')}`;
  if (!Number.isSafeInteger(record.pid) || (record.pid as number) < 0) return '"pid" is not a process id';
  if (record.pidStartTime !== undefined && typeof record.pidStartTime !== 'string') return '"pidStartTime" is not a string';
  const { annotations, sandbox } = record;
  if (annotations !== undefined && annotations !== null
    && (!isObject(annotations) || Object.values(annotations).some((value) => typeof value !== 'string'))) {
    return '"annotations" is not an object of strings';
  }
  if (sandbox !== undefined && (!isObject(sandbox) || sandbox.driver !== record.driver)) return `"sandbox" is not a sandbox of the ${String(record.driver)} driver`;
  return undefined;
}

/**
 * The record in a container's state.json text (state-store.ts's ContainerRecord), checked; throws
 * StateDamageError saying what is wrong.
 */
export function parseContainerRecord(text: string, id: string, path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new StateDamageError(id, path, `is not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(value)) throw new StateDamageError(id, path, `does not hold a container's state (${JSON.stringify(value)})`);
  if (value.id !== id) {
    throw new StateDamageError(id, path, typeof value.id === 'string' ? `is the state of container "${value.id}", not of ${id}` : 'has no container id');
  }
  const wrong = wrongField(value);
  if (wrong) throw new StateDamageError(id, path, `is damaged: ${wrong}`);
  return value;
}
