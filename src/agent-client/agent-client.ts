import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { encodeFrame, FrameDecoder, FrameType, type Frame } from './agent-frame.js';
import { encodeRecords, Records, type RecordList } from './agent-records.js';
import { AgentError } from '../errors/errors.js';

/** Where the output of a process whose stdio is relayed over the connection goes; null marks EOF. */
export interface OutputSink {
  stdout(data: Buffer | null): void;
  stderr(data: Buffer | null): void;
}

interface Pending {
  /** The `id` record of the request: the container its error messages name. */
  containerId: string | undefined;
  resolve(records: Records): void;
  reject(error: Error): void;
}

/**
 * One connection to an agent over any byte stream (a unix socket today, a virtio-serial port tomorrow):
 * many requests in flight, responses matched by id, process output routed to its sink, events emitted.
 */
export class AgentClient extends EventEmitter {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly sinks = new Map<number, OutputSink>();
  private readonly decoder = new FrameDecoder();
  private closedWith: Error | undefined;

  constructor(private readonly stream: Duplex) {
    super();
    stream.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (error) {
        this.fail(error as Error);
        stream.destroy();
        return;
      }
      for (const frame of frames) this.dispatch(frame);
    });
    stream.on('error', (error) => this.fail(new Error(`agent connection failed: ${error.message}`)));
    stream.on('close', () => this.fail(new Error('the agent closed the connection')));
  }

  /** Sends a request; with a sink, the process it starts has its output relayed there. */
  call(records: RecordList, sink?: OutputSink): { id: number; response: Promise<Records> } {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0 || 1;
    const response = new Promise<Records>((resolve, reject) => {
      if (this.closedWith) return reject(this.closedWith);
      this.pending.set(id, { containerId: records.find(([key]) => key === 'id')?.[1], resolve, reject });
      if (sink) this.sinks.set(id, sink);
      this.stream.write(encodeFrame(id, FrameType.Request, encodeRecords(records)));
    });
    return { id, response };
  }

  request(records: RecordList): Promise<Records> {
    return this.call(records).response;
  }

  writeStdin(id: number, data: Buffer): void {
    if (this.closedWith) return;
    const piece = 1 << 20;
    for (let offset = 0; offset < data.length; offset += piece) {
      this.stream.write(encodeFrame(id, FrameType.Stdin, data.subarray(offset, offset + piece)));
    }
  }

  closeStdin(id: number): void {
    if (!this.closedWith) this.stream.write(encodeFrame(id, FrameType.Stdin, Buffer.alloc(0)));
  }

  close(): void {
    this.stream.end();
    this.stream.destroy();
  }

  private dispatch(frame: Frame): void {
    switch (frame.type) {
      case FrameType.Response: {
        const pending = this.pending.get(frame.id);
        if (!pending) return;
        this.pending.delete(frame.id);
        let records: Records;
        try {
          records = Records.decode(frame.payload);
        } catch (error) {
          pending.reject(error as Error);
          return;
        }
        const error = records.get('error');
        if (error !== undefined) {
          this.sinks.delete(frame.id);
          pending.reject(new AgentError(error, Number(records.get('errno') ?? 0), pending.containerId));
        } else {
          pending.resolve(records);
        }
        return;
      }
      case FrameType.Event: {
        const records = Records.decode(frame.payload);
        this.emit('event', records);
        return;
      }
      case FrameType.Stdout:
      case FrameType.Stderr: {
        const sink = this.sinks.get(frame.id);
        if (!sink) return;
        const data = frame.payload.length ? frame.payload : null;
        if (frame.type === FrameType.Stdout) sink.stdout(data);
        else sink.stderr(data);
        return;
      }
      default:
        return;
    }
  }

  private fail(error: Error): void {
    if (this.closedWith) return;
    this.closedWith = error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    for (const sink of this.sinks.values()) {
      sink.stdout(null);
      sink.stderr(null);
    }
    this.sinks.clear();
    this.emit('close', error);
  }
}
