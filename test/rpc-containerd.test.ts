// runbox's ttrpc client against a real containerd (Debian's 1.6): events forwarded to its ttrpc socket, as the
// shim forwards them, come out of `ctr events` decoded.
import test from 'ava';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeAny } from '../src/rpc/protos.js';
import { TtrpcClient } from '../src/rpc/ttrpc-client.js';
import { PrivateContainerd } from './helpers/containerd.js';

test('containerd accepts an event forwarded over ttrpc and publishes it decoded', async (t) => {
  const containerd = await PrivateContainerd.start(t);
  const events = spawn('ctr', ['-a', containerd.address, 'events'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => events.kill('SIGKILL'));
  let published = '';
  events.stdout.on('data', (chunk: Buffer) => (published += chunk.toString()));
  const client = await TtrpcClient.connect(`${containerd.address}.ttrpc`);
  t.teardown(() => client.close());
  const id = containerd.id('oom');
  // `ctr events` subscribes at some point after it starts: forward until it has seen one (bounded).
  for (let attempt = 0; attempt < 100 && !published.includes(id); attempt++) {
    const now = Date.now();
    await client.call(
      'containerd.services.events.ttrpc.v1.Events',
      'Forward',
      { envelope: { timestamp: { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1e6 }, namespace: 'default', topic: '/tasks/oom', event: encodeAny('containerd.events.TaskOOM', { containerId: id }) } },
      { metadata: { 'containerd-namespace-ttrpc': ['default'] }, timeoutMs: 5000 },
    );
    await sleep(100);
  }
  const line = published.split('\n').find((l) => l.includes(id));
  t.truthy(line, published);
  t.regex(line!, /\bdefault\b/);
  t.regex(line!, /\/tasks\/oom/);
  t.regex(line!, new RegExp(`"container_id":"${id}"`));
});
