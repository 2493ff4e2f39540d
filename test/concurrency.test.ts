import test from 'ava';
import { readdirSync } from 'node:fs';
import { TestEnv } from './helpers/runbox.js';

test('50 parallel create/start/kill/delete cycles leave a clean state root', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '100'];
  });
  const ids = Array.from({ length: 50 }, () => env.id('par'));
  const failures: string[] = [];
  const cycle = async (id: string) => {
    for (const args of [['create', '--bundle', bundle, id], ['start', id], ['kill', id, 'KILL']]) {
      const result = await env.run(args);
      if (result.code !== 0) failures.push(`${args[0]} ${id}: ${result.stderr.trim()}`);
    }
    await env.waitForStatus(id, 'stopped');
    const deleted = await env.run(['delete', id]);
    if (deleted.code !== 0) failures.push(`delete ${id}: ${deleted.stderr.trim()}`);
  };
  // 50 cycles, at most 10 CLIs at a time so two cores are not swamped.
  const queue = [...ids];
  await Promise.all(Array.from({ length: 10 }, async () => {
    while (queue.length) await cycle(queue.shift()!);
  }));
  t.deepEqual(failures, []);
  t.deepEqual(JSON.parse((await env.run(['list', '--format', 'json'])).stdout), []);
  t.deepEqual(readdirSync(env.root), []);
});

test('concurrent operations on one id are serialised: one create wins, the state stays whole', async (t) => {
  const env = new TestEnv(t);
  const bundle = env.bundle((spec) => {
    spec.process!.args = ['sleep', '100'];
  });
  const id = env.id();
  const creates = await Promise.all(Array.from({ length: 6 }, () => env.run(['create', '--bundle', bundle, id])));
  t.is(creates.filter((r) => r.code === 0).length, 1);
  for (const r of creates.filter((r) => r.code !== 0)) t.regex(r.stderr, /already exists/);

  const mixed = await Promise.all([
    env.run(['start', id]), env.run(['start', id]), env.run(['state', id]), env.run(['kill', id, 'CONT']), env.run(['start', id]),
  ]);
  const starts = [mixed[0]!, mixed[1]!, mixed[4]!];
  t.is(starts.filter((r) => r.code === 0).length, 1, 'exactly one start wins');
  t.is((await env.state(id)).status, 'running');

  const deletes = await Promise.all(Array.from({ length: 4 }, () => env.run(['delete', '--force', id])));
  t.true(deletes.every((r) => r.code === 0), deletes.map((r) => r.stderr).join(''));
  const list = JSON.parse((await env.run(['list', '--format', 'json'])).stdout) as unknown[];
  t.deepEqual(list, []);
});
