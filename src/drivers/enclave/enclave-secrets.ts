// The secrets an enclave's container asks for: config.json annotations io.runbox.enclave.secret.NAME=RESOURCE, each
// a key broker resource (repository/type/tag) that the guest fetches after attestation and the container finds
// as /run/secrets/NAME. Only names and resource paths pass through the host: the values never do.
import { SpecError } from '../../errors/errors.js';
import { RESOURCE_PATH } from '../../attestation/reference-values.js';
import { UNIT_SEPARATOR, type RecordList } from '../../agent-client/agent-records.js';

export const SECRET_ANNOTATION_PREFIX = 'io.runbox.enclave.secret.';
const SECRET_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

export interface SecretRequest {
  /** The file name under /run/secrets. */
  name: string;
  /** The key broker's resource path. */
  resource: string;
}

/** The secrets the annotations ask for, by name; a bad name or resource path is named. */
export function requestedSecrets(annotations: Record<string, string> | undefined): SecretRequest[] {
  const secrets: SecretRequest[] = [];
  for (const [key, resource] of Object.entries(annotations ?? {})) {
    if (!key.startsWith(SECRET_ANNOTATION_PREFIX)) continue;
    const name = key.slice(SECRET_ANNOTATION_PREFIX.length);
    if (!SECRET_NAME.test(name)) throw new SpecError(`${key}: "${name}" cannot name a file under /run/secrets (letters, digits, _ . -)`);
    if (!RESOURCE_PATH.test(resource)) throw new SpecError(`${key}: "${resource}" is not a key broker resource path (repository/type/tag)`);
    secrets.push({ name, resource });
  }
  return secrets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function secretRecords(secrets: SecretRequest[]): RecordList {
  return secrets.map(({ name, resource }) => ['enclave_secret', `${name}${UNIT_SEPARATOR}${resource}`]);
}
