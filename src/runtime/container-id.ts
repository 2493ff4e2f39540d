import { RuntimeError } from '../errors/errors.js';
import { MAX_ID_LENGTH } from '../generated/facts.js';

/**
 * runc 1.1's rule (libcontainer's idRegex `^[\w+-\.]+$`, whose `+-\.` is the range + , - .): ASCII letters, digits and
 * `_ + , - .`, anywhere; less `.` and `..`, which are not a directory of their own (runc: "/"+id must be a clean path).
 */
const VALID = /^[A-Za-z0-9_+,.-]+$/;

/** Refuses ids that could escape the state root or confuse tools, before anything touches the disk. */
export function validateContainerId(id: string | undefined): string {
  if (id === undefined || id === '') throw new RuntimeError('container id cannot be empty');
  if (id.length > MAX_ID_LENGTH) throw new RuntimeError(`invalid container id: longer than ${MAX_ID_LENGTH} characters`);
  if (id === '.' || id === '..' || !VALID.test(id)) {
    throw new RuntimeError(`invalid container id "${id}": use letters, digits, and _ + , - . (not . or .. alone)`);
  }
  return id;
}
