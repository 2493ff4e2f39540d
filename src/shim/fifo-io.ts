// A task's stdio through the FIFOs containerd names in Create/Exec: the driver relays the process's output
// (`stream` stdio) and this writes it to the stdout/stderr FIFOs, and feeds the stdin FIFO to the process.
// A FIFO is held read-write and non-blocking, so that a reader that goes away (containerd restarting) never
// kills the writer with EPIPE, and libuv polls it like a pipe. An output FIFO is opened so only once its reader
// is there, as runc's shim does with a blocking open: what is written to a FIFO nobody has opened for reading is
// gone when the writer closes it, and a client may open its end late (ctr's opens in a goroutine of its own).
import { closeSync, constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import type { ProcessOutput, RunningProcess } from '../sandbox/driver.js';
import { RuntimeError } from '../errors/errors.js';

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

function fifoSocket(fd: number, direction: 'in' | 'out'): Socket {
  // The shim must never read an output FIFO it holds read-write: it would take bytes meant for containerd.
  const socket = new Socket({ fd, readable: direction === 'in', writable: direction === 'out' });
  socket.on('error', () => {
    // A FIFO whose reader is gone: output is dropped, as with any other shim.
  });
  return socket;
}

/**
 * A write-only fd of the FIFO if it has a reader now (a non-blocking write-only open fails with ENXIO while it
 * has none), else undefined.
 */
function writerIfRead(path: string): number | undefined {
  try {
    return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENXIO') return undefined;
    throw error;
  }
}

/** Longest pause between two looks for an output FIFO's reader. */
const READER_POLL_MAX_MS = 50;

/** An output FIFO: what is written before its reader comes is kept, and written once the FIFO is open. */
class OutputFifo {
  private socket: Socket | undefined;
  private pending: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private markOpen!: () => void;
  /** Resolves once the FIFO is open (its reader came), or it was closed without one. */
  readonly opened = new Promise<void>((resolve) => (this.markOpen = resolve));

  constructor(private readonly path: string) {
    if (!this.openIfRead()) this.lookAgain(1);
  }

  private openIfRead(): boolean {
    const writer = writerIfRead(this.path);
    if (writer === undefined) return false;
    try {
      this.socket = fifoSocket(openSync(this.path, constants.O_RDWR | constants.O_NONBLOCK), 'out');
    } finally {
      // Only now: without a writer in between, a reader woken by this one would read EOF.
      closeSync(writer);
    }
    for (const chunk of this.pending) this.socket.write(chunk);
    this.pending = [];
    this.markOpen();
    return true;
  }

  private lookAgain(ms: number): void {
    this.timer = setTimeout(() => {
      let open: boolean;
      try {
        open = this.openIfRead();
      } catch {
        open = false; // the FIFO went away: its output has nowhere to go
        this.close();
      }
      if (!open && !this.closed) this.lookAgain(Math.min(ms * 2, READER_POLL_MAX_MS));
    }, ms);
  }

  write(data: Buffer): void {
    if (this.socket) this.socket.write(data);
    else if (!this.closed) this.pending.push(data);
  }

  /** Closes the FIFO once what was written has gone out (a FIFO cannot be half-closed: its fd must go). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.pending = [];
    this.markOpen();
    const socket = this.socket;
    if (!socket) return;
    if (socket.writableLength > 0) socket.once('drain', () => socket.destroy());
    else socket.destroy();
  }
}

export class FifoIo implements ProcessOutput {
  private readonly stdinFifo: Socket | undefined;
  private readonly stdoutFifo: OutputFifo | undefined;
  private readonly stderrFifo: OutputFifo | undefined;
  private ends = 0;
  private markEnded!: () => void;
  private readonly ended = new Promise<void>((resolve) => (this.markEnded = resolve));
  /** Resolves when the process's output has all been relayed (both EOFs seen) into FIFOs their readers hold. */
  readonly drained: Promise<void>;

  constructor(readonly paths: StdioPaths) {
    let stdin: Socket | undefined;
    const outputs: OutputFifo[] = [];
    try {
      if (paths.stdin) stdin = fifoSocket(openSync(paths.stdin, constants.O_RDWR | constants.O_NONBLOCK), 'in');
      for (const path of [paths.stdout, paths.stderr]) if (path) outputs.push(new OutputFifo(path));
    } catch (error) {
      stdin?.destroy();
      for (const fifo of outputs) fifo.close();
      throw new RuntimeError(`cannot open the task's stdio: ${(error as Error).message}`);
    }
    this.stdinFifo = stdin;
    this.stdinFifo?.pause();
    [this.stdoutFifo, this.stderrFifo] = [paths.stdout, paths.stderr].map((path) => (path ? outputs.shift() : undefined));
    this.drained = Promise.all([this.ended, this.stdoutFifo?.opened, this.stderrFifo?.opened]).then(() => {});
  }

  stdout(data: Buffer | null): void {
    this.relay(this.stdoutFifo, data);
  }

  stderr(data: Buffer | null): void {
    this.relay(this.stderrFifo, data);
  }

  private relay(fifo: OutputFifo | undefined, data: Buffer | null): void {
    if (data) {
      fifo?.write(data);
      return;
    }
    if (++this.ends === 2) this.markEnded();
  }

  /** Feeds what containerd writes to the stdin FIFO to the process, until CloseIO. */
  attachStdin(process: RunningProcess): void {
    if (!this.stdinFifo) return;
    this.stdinFifo.on('data', (chunk: Buffer) => process.writeStdin(chunk));
    this.stdinFifo.resume();
    this.closeStdin = () => {
      this.stdinFifo!.destroy();
      process.closeStdin();
      this.closeStdin = () => {};
    };
  }

  closeStdin: () => void = () => {};

  /** Closes the FIFOs, the output ones once what was written has gone out, so that their readers see EOF. */
  close(): void {
    this.stdinFifo?.destroy();
    this.stdoutFifo?.close();
    this.stderrFifo?.close();
  }
}
