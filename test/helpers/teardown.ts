// What test helpers need from their owner: an ava test, or a benchmark that runs the cleanups itself.
export interface TeardownOwner {
  teardown(cleanup: () => unknown): void;
}

/** An owner for code outside ava: `run()` undoes, last first, what the helpers set up. */
export function cleanupList(): TeardownOwner & { run(): Promise<void> } {
  const cleanups: Array<() => unknown> = [];
  return {
    teardown: (cleanup) => cleanups.push(cleanup),
    async run() {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    },
  };
}
