// NODE_EXTRA_CA_CERTS, read only when a registry is reached over TLS. Node parses that file's certificates at
// the start of every process (~40 ms with a system bundle), a cost each CLI call would pay for the few that
// pull: bin/runbox hands the path over as RUNBOX_EXTRA_CA_CERTS instead, and the registry client trusts the
// file beside Node's bundled roots, as Node itself would have.
import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';

export const DEFERRED_EXTRA_CA_CERTS = 'RUNBOX_EXTRA_CA_CERTS';

/**
 * The TLS context for registry connections when extra certificates were deferred; undefined means Node's default
 * (which already holds NODE_EXTRA_CA_CERTS when the variable reached Node). An unreadable file is ignored with a
 * warning, as Node ignores it.
 */
export function deferredCaContext(env: NodeJS.ProcessEnv = process.env): SecureContext | undefined {
  const file = env[DEFERRED_EXTRA_CA_CERTS];
  if (!file || env.NODE_EXTRA_CA_CERTS) return undefined;
  let extra: string;
  try {
    extra = readFileSync(file, 'utf8');
  } catch (error) {
    process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${(error as Error).message}`);
    return undefined;
  }
  return createSecureContext({ ca: [...rootCertificates, extra] });
}
