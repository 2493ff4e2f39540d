// The error a registry puts in a response body, in words (errors.ts's RegistryError carries it to the user).
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
