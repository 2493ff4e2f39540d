// Connects this terminal or these pipes to a container process whose stdio the driver relays.
import type { ProcessOutput, RunningProcess } from '../sandbox/driver.js';

/** Output sinks writing to this process's stdout/stderr; `done` settles when both reached end of file. */
export function outputToStdio(): { output: ProcessOutput; done: Promise<void> } {
  let open = 2;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const end = () => {
    if (--open === 0) finish();
  };
  return {
    output: {
      stdout: (data) => (data ? process.stdout.write(data) : end()),
      stderr: (data) => (data ? process.stderr.write(data) : end()),
    },
    done,
  };
}

/**
 * Feeds this process's stdin to the container process (raw mode when it is a terminal, so keys reach the
 * pty as typed). Returns a function that restores the terminal and stops reading.
 */
export function attachStdin(target: RunningProcess, terminal: boolean): () => void {
  const stdin = process.stdin;
  const raw = terminal && stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  const onData = (data: Buffer) => target.writeStdin(data);
  const onEnd = () => target.closeStdin();
  stdin.on('data', onData);
  stdin.on('end', onEnd);
  stdin.resume();
  return () => {
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
    stdin.destroy();
  };
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/** Forwards the signals this process receives to the container, as runc does in the foreground. */
export function forwardSignals(send: (signal: NodeJS.Signals) => void): () => void {
  const handlers = FORWARDED.map((signal) => {
    const handler = () => send(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}

/** Keeps a relayed pty's window size in step with this terminal's (now, and on every SIGWINCH). */
export function followWindowSize(resize: (width: number, height: number) => Promise<void>): () => void {
  if (!process.stdout.isTTY) return () => {};
  const send = () => {
    resize(process.stdout.columns, process.stdout.rows).catch(() => {});
  };
  send();
  process.on('SIGWINCH', send);
  return () => process.off('SIGWINCH', send);
}
