// A task's stdio through the FIFOs containerd names in Create/Exec: the driver relays the process's output
// (`stream` stdio) and this writes it to the stdout/stderr FIFOs, and feeds the stdin FIFO to the process.
// Every FIFO is opened read-write and non-blocking, so that opening never waits for the other end, a reader
// that goes away (containerd restarting) never kills the writer with EPIPE, and libuv polls it like a pipe.
import { constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import type { ProcessOutput, RunningProcess } from '../hypervisor/driver.js';

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

function openFifo(path: string, direction: 'in' | 'out'): Socket | undefined {
  if (!path) return undefined;
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  // The shim must never read an output FIFO it holds read-write: it would take bytes meant for containerd.
  const socket = new Socket({ fd, readable: direction === 'in', writable: direction === 'out' });
  socket.on('error', () => {
    // A FIFO whose reader is gone: output is dropped, as with any other shim.
  });
  return socket;
}

export class FifoIo implements ProcessOutput {
  private readonly stdinFifo: Socket | undefined;
  private readonly stdoutFifo: Socket | undefined;
  private readonly stderrFifo: Socket | undefined;
  private ends = 0;
  private markDrained!: () => void;
  /** Resolves when the process's output has all been relayed (both EOFs seen). */
  readonly drained = new Promise<void>((resolve) => (this.markDrained = resolve));

  constructor(readonly paths: StdioPaths) {
    const opened: Socket[] = [];
    try {
      for (const [path, direction] of [[paths.stdin, 'in'], [paths.stdout, 'out'], [paths.stderr, 'out']] as const) {
        const fifo = openFifo(path, direction);
        if (fifo) opened.push(fifo);
      }
    } catch (error) {
      for (const fifo of opened) fifo.destroy();
      throw new Error(`cannot open the task's stdio: ${(error as Error).message}`);
    }
    [this.stdinFifo, this.stdoutFifo, this.stderrFifo] = [paths.stdin, paths.stdout, paths.stderr].map((path) => (path ? opened.shift() : undefined));
    this.stdinFifo?.pause();
  }

  stdout(data: Buffer | null): void {
    this.relay(this.stdoutFifo, data);
  }

  stderr(data: Buffer | null): void {
    this.relay(this.stderrFifo, data);
  }

  private relay(fifo: Socket | undefined, data: Buffer | null): void {
    if (data) {
      fifo?.write(data);
      return;
    }
    if (++this.ends === 2) this.markDrained();
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

  /**
   * Closes the output FIFOs once what was written has gone out, so that containerd's readers see EOF (a FIFO
   * cannot be half-closed with shutdown(2): its fd must go).
   */
  close(): void {
    this.stdinFifo?.destroy();
    for (const fifo of [this.stdoutFifo, this.stderrFifo]) {
      if (!fifo) continue;
      if (fifo.writableLength > 0) fifo.once('drain', () => fifo.destroy());
      else fifo.destroy();
    }
  }
}
