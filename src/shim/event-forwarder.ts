// Task events to containerd: Events/Forward on TTRPC_ADDRESS, one at a time in the order they were queued,
// each retried until containerd takes it, so that none is lost (nor reordered) while containerd restarts.
import { encodeAny } from '../rpc/protos.js';
import { TtrpcClient } from '../rpc/ttrpc-client.js';

export const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';
const NAMESPACE_METADATA = 'containerd-namespace-ttrpc';
const CALL_TIMEOUT_MS = 5000;
const MAX_BACKOFF_MS = 1000;

export type TaskTopic = 'create' | 'start' | 'exit' | 'delete' | 'exec-added' | 'exec-started' | 'oom' | 'paused' | 'resumed';

export const EVENT_TYPES: Record<TaskTopic, string> = {
  create: 'containerd.events.TaskCreate',
  start: 'containerd.events.TaskStart',
  exit: 'containerd.events.TaskExit',
  delete: 'containerd.events.TaskDelete',
  'exec-added': 'containerd.events.TaskExecAdded',
  'exec-started': 'containerd.events.TaskExecStarted',
  oom: 'containerd.events.TaskOOM',
  paused: 'containerd.events.TaskPaused',
  resumed: 'containerd.events.TaskResumed',
};

interface QueuedEvent {
  topic: string;
  timestamp: { seconds: number; nanos: number };
  event: { typeUrl: string; value: Buffer };
}

export function timestamp(date: Date): { seconds: number; nanos: number } {
  const ms = date.getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

export class EventForwarder {
  private readonly queue: QueuedEvent[] = [];
  private client: TtrpcClient | undefined;
  private sending: Promise<void> | undefined;
  private stopped = false;

  /** address: containerd's ttrpc socket (TTRPC_ADDRESS); without one, events are dropped with a warning. */
  constructor(
    private readonly address: string | undefined,
    private readonly namespace: string,
    private readonly warn: (message: string) => void,
  ) {}

  publish(topic: TaskTopic, event: object): void {
    if (!this.address) return;
    this.queue.push({ topic: `/tasks/${topic}`, timestamp: timestamp(new Date()), event: encodeAny(EVENT_TYPES[topic], event) });
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined;
    });
  }

  /** Resolves once every queued event is delivered, or after timeoutMs (then the rest is given up). */
  async flush(timeoutMs: number): Promise<void> {
    if (!this.sending) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.sending, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    if (this.queue.length) this.warn(`${this.queue.length} event(s) not delivered to containerd`);
  }

  close(): void {
    this.stopped = true;
    this.client?.close();
  }

  private async drain(): Promise<void> {
    let backoff = 50;
    while (this.queue.length && !this.stopped) {
      const next = this.queue[0]!;
      try {
        this.client ??= await TtrpcClient.connect(this.address!);
        await this.client.call(EVENTS_SERVICE, 'Forward', { envelope: { ...next, namespace: this.namespace } }, {
          timeoutMs: CALL_TIMEOUT_MS,
          metadata: { [NAMESPACE_METADATA]: [this.namespace] },
        });
        this.queue.shift();
        backoff = 50;
      } catch (error) {
        this.client?.close();
        this.client = undefined;
        if (backoff === 50) this.warn(`forwarding ${next.topic} to containerd: ${(error as Error).message}; retrying`);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }
}
