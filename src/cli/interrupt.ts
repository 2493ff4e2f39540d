// SIGINT and SIGTERM while a command makes something it must not leave half made (a bundle): the work is told to
// stop and clean up, then the signal is raised again, so that the process ends as the signal says.
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export async function cleanlyInterruptible<T>(body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const abort = (name: NodeJS.Signals) => controller.abort(name);
  const listen = (on: boolean) => SIGNALS.forEach((name) => (on ? process.on(name, abort) : process.off(name, abort)));
  listen(true);
  try {
    return await body(controller.signal);
  } catch (error) {
    if (!controller.signal.aborted) throw error;
    listen(false);
    process.kill(process.pid, controller.signal.reason as NodeJS.Signals);
    return await new Promise<never>(() => {});
  } finally {
    listen(false);
  }
}
