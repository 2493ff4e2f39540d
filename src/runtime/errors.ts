/** An error the runtime reports to its caller as is: one line naming the container and what is wrong. */
export class RuntimeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RuntimeError';
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
