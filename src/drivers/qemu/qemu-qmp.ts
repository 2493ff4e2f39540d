// A QMP client (QEMU's JSON control protocol on a unix socket): greeting, capabilities negotiation, then one
// command at a time. Used for what only QEMU itself can answer or do: the VM's run state, and quitting.
import type { Socket } from 'node:net';
import { connectUnix } from '../../host/unix-socket.js';

interface QmpReply {
  return?: unknown;
  error?: { class: string; desc: string };
  event?: string;
}

export class QmpClient {
  private buffered = '';
  private waiting: Array<(reply: QmpReply) => void> = [];
  private failure: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffered += text;
      for (let newline = this.buffered.indexOf('\n'); newline >= 0; newline = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, newline).trim();
        this.buffered = this.buffered.slice(newline + 1);
        if (!line) continue;
        const reply = JSON.parse(line) as QmpReply;
        if (reply.event) continue;
        this.waiting.shift()?.(reply);
      }
    });
    const fail = (error: Error) => {
      this.failure ??= error;
      for (const waiter of this.waiting.splice(0)) waiter({ error: { class: 'Disconnected', desc: this.failure.message } });
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('QMP connection closed')));
  }

  static async connect(path: string): Promise<QmpClient> {
    const socket = connectUnix(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new QmpClient(socket);
    await client.next(); // the greeting
    await client.execute('qmp_capabilities');
    return client;
  }

  private next(): Promise<QmpReply> {
    return new Promise((resolve) => {
      if (this.failure) resolve({ error: { class: 'Disconnected', desc: this.failure.message } });
      else this.waiting.push(resolve);
    });
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const reply = this.next();
    this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    const { error, return: result } = await reply;
    if (error) throw new Error(`QMP ${command}: ${error.desc}`);
    return result;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The VM's run state ("running", "internal-error", "shutdown"…), or undefined when QEMU cannot be asked. */
export async function queryRunState(path: string): Promise<string | undefined> {
  let client: QmpClient | undefined;
  try {
    client = await QmpClient.connect(path);
    return ((await client.execute('query-status')) as { status: string }).status;
  } catch {
    return undefined;
  } finally {
    client?.close();
  }
}

/** Asks QEMU to exit at once; false when it could not be asked within ms (a QEMU that does not answer). */
export async function quitQemu(path: string, ms = 1000): Promise<boolean> {
  let client: QmpClient | undefined;
  let timer: NodeJS.Timeout | undefined;
  const asked = (async () => {
    client = await QmpClient.connect(path);
    await client.execute('quit').catch(() => {}); // QEMU may close before it answers
    return true;
  })();
  try {
    return await Promise.race([asked, new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    // A connection made after the time was up is closed once it is.
    void asked.finally(() => client?.close()).catch(() => {});
  }
}
