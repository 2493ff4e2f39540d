// What can go wrong talking to a registry, as a user can act on it. Messages never carry credentials.
export type RegistryErrorKind = 'not-found' | 'unauthorized' | 'unreachable' | 'protocol' | 'digest-mismatch' | 'no-platform' | 'insecure' | 'limit';

export class RegistryError extends Error {
  constructor(
    readonly kind: RegistryErrorKind,
    /** The message without the number of attempts. */
    readonly reason: string,
    readonly transient = false,
    /** How many times the request was made before this error was given up on. */
    readonly attempts = 1,
  ) {
    super(attempts > 1 ? `${reason} (tried ${attempts} times)` : reason);
  }

  /** The same error, after `attempts` attempts in all. */
  tried(attempts: number): RegistryError {
    return new RegistryError(this.kind, this.reason, this.transient, attempts);
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
