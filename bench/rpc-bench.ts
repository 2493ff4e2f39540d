// The rpc layer's costs: loading the protobuf types at start-up (what every shim start pays), and ttrpc and gRPC
// round trips between two processes on a unix socket (containerd ↔ shim). Run alone with
// `node dist/bench/rpc-bench.js`, or as part of `npm run bench`.
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveGrpc } from '../src/rpc/grpc-server.js';
import { decodeMessage, encodeMessage } from '../src/rpc/protos.js';
import type { ServiceImplementation } from '../src/rpc/service.js';
import { TtrpcClient } from '../src/rpc/ttrpc-client.js';
import { TtrpcServer } from '../src/rpc/ttrpc-server.js';
import { median } from './stats.js';

const SERVE_FLAG = '--rpc-bench-serve';
const self = fileURLToPath(import.meta.url);
const project = fileURLToPath(new URL('../../', import.meta.url));
const LOAD_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const SEQUENTIAL_CALLS = 1000;
const CONCURRENT_CALLS = 5000;
const IN_FLIGHT = 64;

const echoState: ServiceImplementation = { State: async ({ id }) => ({ id, pid: 1, status: 2 }) };


function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/**
 * Wall and CPU milliseconds a fresh node process spends in `script` (an ES module body), medians over rounds. CPU
 * time is the steadier figure on a shared machine.
 */
function loadTime(script: string): string {
  const runner = `const t = performance.now(); const c = process.cpuUsage(); await import('data:text/javascript,' + encodeURIComponent(${JSON.stringify(script)})); const u = process.cpuUsage(c); process.stdout.write(JSON.stringify([performance.now() - t, (u.user + u.system) / 1000]));`;
  const samples = Array.from({ length: LOAD_ROUNDS }, () => {
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', runner], { cwd: project, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`load benchmark failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as [number, number];
  });
  return `${median(samples.map((s) => s[0])).toFixed(1)} ms (CPU ${median(samples.map((s) => s[1])).toFixed(1)} ms)`;
}

function loadRows(): string[] {
  const moduleUrl = (path: string) => new URL(path, `file://${project}`).href;
  const firstUse = `const t = root.lookupType('containerd.task.v2.CreateTaskRequest'); t.toObject(t.decode(t.encode(t.fromObject({ id: 'x', rootfs: [{ type: 'overlay' }] })).finish()));`;
  const protoFiles = ['runtime/task/v2/shim.proto', 'events/task.proto', 'services/ttrpc/events/v1/events.proto'].map((f) => `github.com/containerd/containerd/api/${f}`);
  const fromProto = `
    const { default: protobuf } = await import(${JSON.stringify(moduleUrl('node_modules/protobufjs/index.js'))});
    const root = new protobuf.Root();
    root.resolvePath = (_o, target) => target.startsWith('google/protobuf/') ? target : ${JSON.stringify(join(project, 'proto'))} + '/' + target;
    root.loadSync(${JSON.stringify([...protoFiles, 'github.com/containerd/ttrpc/request.proto'])});
    ${firstUse}`;
  const fromJson = `
    const { messageType } = await import(${JSON.stringify(moduleUrl('dist/src/rpc/protos.js'))});
    const root = { lookupType: messageType };
    ${firstUse}`;
  return [
    `| load types and code one: protobufjs parses proto/*.proto (loadSync; without task.v3) | ${loadTime(fromProto)} |`,
    `| load types and code one: protobufjs/light + JSON descriptor (src/rpc/protos.ts) | ${loadTime(fromJson)} |`,
  ];
}

/** Resident memory of a fresh node process that serves Task on a socket and has answered one call over it. */
function servingRss(dir: string, withGrpc: boolean): string {
  const url = (path: string) => JSON.stringify(new URL(path, `file://${project}`).href);
  const script = `
    const { TtrpcServer } = await import(${url('dist/src/rpc/ttrpc-server.js')});
    const { TtrpcClient } = await import(${url('dist/src/rpc/ttrpc-client.js')});
    ${withGrpc ? `await import(${url('dist/src/rpc/grpc-server.js')});` : ''}
    const server = new TtrpcServer();
    server.addService('containerd.task.v2.Task', { State: async ({ id }) => ({ id }) });
    const path = ${JSON.stringify(join(dir, `rss-${withGrpc}.sock`))};
    await server.listen(path);
    const client = await TtrpcClient.connect(path);
    await client.call('containerd.task.v2.Task', 'State', { id: 'x' });
    client.close();
    await server.close();
    process.stdout.write(String(process.memoryUsage().rss));`;
  const samples = Array.from({ length: 5 }, () => {
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`rss benchmark failed: ${result.stderr}`);
    return Number(result.stdout) / 2 ** 20;
  });
  return `${median(samples).toFixed(1)} MiB`;
}

async function ttrpcRows(path: string): Promise<string[]> {
  const client = await TtrpcClient.connect(path);
  try {
    return await roundTripRows('ttrpc', (id) => client.call('containerd.task.v2.Task', 'State', { id }));
  } finally {
    client.close();
  }
}

async function grpcRows(path: string): Promise<string[]> {
  const client = new Client(`unix:${path}`, credentials.createInsecure());
  const state = (id: string) =>
    new Promise<unknown>((resolve, reject) =>
      client.makeUnaryRequest(
        '/containerd.task.v3.Task/State',
        (value: object) => encodeMessage('containerd.task.v3.StateRequest', value),
        (bytes: Buffer) => decodeMessage('containerd.task.v3.StateResponse', bytes),
        { id },
        new Metadata(),
        {},
        (error, response) => (error ? reject(error) : resolve(response)),
      ),
    );
  try {
    return await roundTripRows('gRPC', state);
  } finally {
    client.close();
  }
}

async function roundTripRows(transport: string, call: (id: string) => Promise<unknown>): Promise<string[]> {
  for (let i = 0; i < 200; i++) await call(`warm-${i}`);
  const latencies: number[] = [];
  for (let i = 0; i < SEQUENTIAL_CALLS; i++) {
    const started = process.hrtime.bigint();
    await call(`c${i}`);
    latencies.push(Number(process.hrtime.bigint() - started) / 1e3);
  }
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < CONCURRENT_CALLS) await call(`p${next++}`);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return [
    `| ${transport} State round trip, one at a time: median / p99 | ${median(latencies).toFixed(0)} / ${percentile(latencies, 0.99).toFixed(0)} µs |`,
    `| ${transport} State calls with ${IN_FLIGHT} in flight on one connection | ${Math.round(CONCURRENT_CALLS / seconds)} calls/s |`,
  ];
}

/** The server half, in its own process as a shim would be: serves State over ttrpc and gRPC until stdin closes. */
async function serve(dir: string): Promise<void> {
  const ttrpc = new TtrpcServer();
  ttrpc.addService('containerd.task.v2.Task', echoState);
  await ttrpc.listen(join(dir, 'ttrpc.sock'));
  const grpc = await serveGrpc('containerd.task.v3.Task', echoState, join(dir, 'grpc.sock'));
  process.stdout.write('ready\n');
  process.stdin.resume().once('end', () => void Promise.all([ttrpc.close(), grpc.close()]));
}

/** The markdown table `npm run bench` prints for the rpc layer. */
export async function rpcBench(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-rpc-bench-'));
  const server = spawn(process.execPath, [self, SERVE_FLAG, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`rpc bench server exited with ${code}`)));
    });
    const rows = [
      ...loadRows(),
      `| RSS of a node process serving ttrpc, after one call | ${servingRss(dir, false)} |`,
      `| the same with @grpc/grpc-js loaded too | ${servingRss(dir, true)} |`,
      ...(await ttrpcRows(join(dir, 'ttrpc.sock'))),
      ...(await grpcRows(join(dir, 'grpc.sock'))),
    ];
    return [`rpc layer: client and server in two processes on a unix socket; load times are medians of ${LOAD_ROUNDS} fresh processes`, '', '| measure | value |', '| --- | ---: |', ...rows, ''].join('\n');
  } finally {
    server.stdin.end();
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === self) {
  if (process.argv[2] === SERVE_FLAG) await serve(process.argv[3]!);
  else process.stdout.write(await rpcBench());
}
