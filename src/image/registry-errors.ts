// What can go wrong talking to a registry, as a user can act on it. Messages never carry credentials.
export type RegistryErrorKind = 'not-found' | 'unauthorized' | 'unreachable' | 'protocol' | 'digest-mismatch' | 'no-platform' | 'insecure' | 'limit';

export class RegistryError extends Error {
  constructor(readonly kind: RegistryErrorKind, message: string, readonly transient = false) {
    super(message);
  }
}

/** The first error the distribution API put in a response body ({"errors":[{"code","message"}]}), if any. */
export function registryErrorCode(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { errors?: { code?: string; message?: string }[] };
    const first = parsed.errors?.[0];
    return first?.code ? `${first.code}${first.message ? `: ${first.message}` : ''}` : undefined;
  } catch {
    return undefined;
  }
}
