import { RuntimeError } from './errors.js';
import { MAX_ID_LENGTH } from '../generated/facts.js';

const VALID = /^[A-Za-z0-9][A-Za-z0-9_+\-.]*$/;

/** Refuses ids that could escape the state root or confuse tools, before anything touches the disk. */
export function validateContainerId(id: string | undefined): string {
  if (id === undefined || id === '') throw new RuntimeError('container id cannot be empty');
  if (id.length > MAX_ID_LENGTH) throw new RuntimeError(`invalid container id: longer than ${MAX_ID_LENGTH} characters`);
  if (id === '.' || id === '..' || id.includes('/') || !VALID.test(id)) {
    throw new RuntimeError(`invalid container id "${id}": use letters, digits, and _ + - . (not starting with them)`);
  }
  return id;
}
