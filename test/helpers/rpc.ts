import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { ServiceImplementation } from '../../src/rpc/service.js';
import { TtrpcClient } from '../../src/rpc/ttrpc-client.js';
import { decodeResponse, encodeRequest, type TtrpcRequest } from '../../src/rpc/ttrpc-messages.js';
import { encodeFrame, type Frame, FrameDecoder, MessageType } from '../../src/rpc/ttrpc-frame.js';
import { TtrpcServer } from '../../src/rpc/ttrpc-server.js';

export const TASK = 'containerd.task.v2.Task';

/** Resolves once condition() holds; polls, and fails with what it waited for after 20 s. */
export async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 5) {
    if (waited > 20_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A private directory for sockets, removed when the test ends. */
export function socketDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-rpc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A TtrpcServer serving `implementation` as containerd.task.v2.Task, and a client connected to it. */
export async function taskServer(t: ExecutionContext, implementation: ServiceImplementation): Promise<{ server: TtrpcServer; client: TtrpcClient; path: string }> {
  const path = join(socketDir(t), 'ttrpc.sock');
  const server = new TtrpcServer();
  server.addService(TASK, implementation);
  await server.listen(path);
  t.teardown(() => server.close());
  const client = await TtrpcClient.connect(path);
  t.teardown(() => client.close());
  return { server, client, path };
}

/** A connection that speaks frames by hand, for what the real client never sends. */
export class RawConnection {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    const decoder = new FrameDecoder(
      (frame) => {
        this.frames.push(frame);
        for (const wake of this.waiters.splice(0)) wake();
      },
      (error) => socket.destroy(error),
    );
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static open(t: ExecutionContext, path: string): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(path, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
      t.teardown(() => socket.destroy());
    });
  }

  send(streamId: number, type: number, flags: number, data: Uint8Array): void {
    this.socket.write(encodeFrame(streamId, type, flags, data));
  }

  request(streamId: number, request: Partial<TtrpcRequest>): void {
    this.send(streamId, MessageType.REQUEST, 0, encodeRequest({ service: TASK, method: 'State', payload: Buffer.alloc(0), timeoutNano: 0, metadata: [], ...request }));
  }

  /** The reply on a stream: its payload, or the RpcError it carries (returned, not thrown). */
  async reply(streamId: number): Promise<Buffer | Error> {
    for (;;) {
      const frame = this.frames.find((f) => f.streamId === streamId && f.type === MessageType.RESPONSE);
      if (frame) {
        try {
          return decodeResponse(frame.data);
        } catch (error) {
          return error as Error;
        }
      }
      await new Promise<void>((resolve, reject) => {
        this.waiters.push(resolve);
        this.closed.then(() => reject(new Error(`connection closed before a reply on stream ${streamId}`)));
      });
    }
  }
}
