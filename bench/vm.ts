// The microVM part of npm run bench: QEMU booting the guest kernel into an init that powers off at once (the
// floor, bench/vm-floor.ts) beside what runbox takes to get a container's first output out of a VM, restored from
// a template (the default) and booted (templates off), a whole create→exit→delete cycle, the memory a VM holds,
// and how many sandboxes a minute two at a time start.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, cpSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentClient } from '../src/agent-client/agent-client.js';
import { processRssKib } from '../src/host/host-process.js';
import { agentPortSocket, clientOnSession, leasePort, openSession } from '../src/drivers/qemu/qemu-agent-port.js';
import type { QemuHandle } from '../src/drivers/qemu/qemu-sandbox.js';
import { defaultSpec } from '../src/oci/default-spec.js';
import { median } from './stats.js';
import { verdict } from './verdict.js';
import { prepareVmFloor } from './vm-floor.js';

const ROUNDS = Number(process.env.BENCH_VM_ROUNDS ?? 7);
const SANDBOXES = 10;
const AT_ONCE = 2;

interface Context {
  project: string;
  work: string;
}

export function vmBundle(context: Context, name: string, args: string[], annotations: Record<string, string> = { 'io.runbox.driver': 'qemu' }): string {
  const dir = join(context.work, name);
  cpSync(join(context.project, 'fixtures', 'busybox', 'build', 'rootfs'), join(dir, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  spec.annotations = annotations;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

/** Templates off: every VM boots its kernel. */
export const BOOTED = { RUNBOX_QEMU_TEMPLATE: 'off' };

/** Runs runbox; resolves with the time from spawn to the first byte on its stdout (if any) and to its exit. */
export function runbox(context: Context, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ firstOutput?: number; exited: number }> {
  const started = process.hrtime.bigint();
  const since = () => Number(process.hrtime.bigint() - started) / 1e6;
  return new Promise((resolve, reject) => {
    const child = spawn(join(context.project, 'bin', 'runbox'), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let firstOutput: number | undefined;
    let stderr = '';
    child.stdout.once('data', () => (firstOutput = since()));
    child.stdout.resume();
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`runbox ${args.join(' ')}: ${stderr.trim()}`));
      else resolve({ ...(firstOutput === undefined ? {} : { firstOutput }), exited: since() });
    });
  });
}

/** One runbox call, its output in files: a container made by create keeps create's stdio (a pipe would not end). */
function cli(context: Context, root: string, args: string[]): string {
  const out = join(context.work, 'cli-stdout');
  const err = join(context.work, 'cli-stderr');
  const [outFd, errFd] = [openSync(out, 'w'), openSync(err, 'w')];
  const result = spawnSync(join(context.project, 'bin', 'runbox'), ['--root', root, ...args], { stdio: ['ignore', outFd, errFd] });
  closeSync(outFd);
  closeSync(errFd);
  if (result.status !== 0) throw new Error(`runbox ${args.join(' ')}: ${readFileSync(err, 'utf8').trim()}`);
  return readFileSync(out, 'utf8');
}

/** create, then start: the time from create's spawn to the container's first byte of output (a pipe on create). */
async function createStartFirstOutput(context: Context, root: string, bundle: string, id: string, env: NodeJS.ProcessEnv = {}): Promise<number> {
  const started = process.hrtime.bigint();
  let resolveOutput!: (ms: number) => void;
  const output = new Promise<number>((resolve) => (resolveOutput = resolve));
  const create = spawn(join(context.project, 'bin', 'runbox'), ['--root', root, 'create', '--bundle', bundle, id], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env },
  });
  create.stdout.once('data', () => resolveOutput(Number(process.hrtime.bigint() - started) / 1e6));
  create.stdout.resume();
  const code = await new Promise<number | null>((resolve) => create.on('exit', resolve));
  if (code !== 0) throw new Error(`runbox create ${id} failed`);
  cli(context, root, ['start', id]);
  const ms = await output;
  cli(context, root, ['delete', '--force', id]);
  return ms;
}

function waitStopped(context: Context, root: string, id: string): void {
  for (let i = 0; i < 3000; i++) {
    if (JSON.parse(cli(context, root, ['state', id])).status === 'stopped') return;
    spawnSync('sleep', ['0.01']);
  }
  throw new Error(`${id} did not stop`);
}

/** A process's resident memory of its own: what is not shared with others (a clone's template pages are). */
function anonymousRssKib(pid: number): number {
  return Number(/^RssAnon:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

/** QEMU's RSS on the host and the agent's in the guest (its own `hello` answer), for a VM running `sleep`. */
async function memoryAfterBoot(context: Context, root: string, bundle: string): Promise<{ qemuMib: number; qemuOwnMib: number; agentMib: number }> {
  const id = 'vm-memory';
  cli(context, root, ['run', '-d', '--bundle', bundle, id]);
  try {
    const handle = (JSON.parse(readFileSync(join(root, id, 'state.json'), 'utf8')) as { sandbox: QemuHandle }).sandbox;
    const lease = await leasePort(handle.dir, handle.agentPorts);
    const client: AgentClient = clientOnSession(await openSession(agentPortSocket(handle.dir, lease.index), AbortSignal.timeout(10_000)), lease);
    const hello = await client.request([['op', 'hello']]);
    client.close();
    return {
      qemuMib: (processRssKib(handle.pid) ?? 0) / 1024,
      qemuOwnMib: anonymousRssKib(handle.pid) / 1024,
      agentMib: hello.number('rss_bytes') / 2 ** 20,
    };
  } finally {
    cli(context, root, ['delete', '--force', id]);
  }
}

export async function vmBench(context: Context): Promise<string> {
  // A template store of the bench's own, empty: the first VM builds the template the others are restored from.
  const templatesBefore = process.env.RUNBOX_QEMU_TEMPLATE_DIR;
  process.env.RUNBOX_QEMU_TEMPLATE_DIR = join(context.work, 'templates');
  try {
    return await measureVms(context);
  } finally {
    if (templatesBefore === undefined) delete process.env.RUNBOX_QEMU_TEMPLATE_DIR;
    else process.env.RUNBOX_QEMU_TEMPLATE_DIR = templatesBefore;
  }
}

async function measureVms(context: Context): Promise<string> {
  const root = join(context.work, 'root-vm');
  const echo = vmBundle(context, 'vm-echo', ['echo', 'first output']);
  const truth = vmBundle(context, 'vm-true', ['true']);
  const sleeper = vmBundle(context, 'vm-sleep', ['sleep', '1000']);

  // Floor boots interleaved with runbox's, so that both see the load of the moment. And every measured boot, the
  // floor's as runbox's, comes right after a floor boot: on this machine a boot right after a process freed a few
  // hundred MB (a VM that just exited, or any other) is 0.2–0.3 s slower, while that memory comes back from the
  // machine's own hypervisor; an unmeasured floor boot takes that after each runbox VM.
  const floors: number[] = [];
  const separate: number[] = [];
  const together: number[] = [];
  const separateBooted: number[] = [];
  const togetherBooted: number[] = [];
  const cycle: number[] = [];
  const floorVm = await prepareVmFloor();
  let firstEver: number;
  try {
    await floorVm.bootMs();
    const first = await runbox(context, ['--root', root, 'run', '--bundle', echo, 'vm-template']);
    if (first.firstOutput === undefined) throw new Error('runbox run printed nothing');
    firstEver = first.firstOutput;
    const firstOutput = async (env: NodeJS.ProcessEnv, id: string) => {
      const run = await runbox(context, ['--root', root, 'run', '--bundle', echo, id], env);
      if (run.firstOutput === undefined) throw new Error('runbox run printed nothing');
      return run.firstOutput;
    };
    for (let round = 0; round < ROUNDS; round++) {
      await floorVm.bootMs();
      floors.push(await floorVm.bootMs());
      separate.push(await createStartFirstOutput(context, root, echo, `vm-first-${round}`));
      await floorVm.bootMs();
      floors.push(await floorVm.bootMs());
      together.push(await firstOutput({}, `vm-run-${round}`));
      await floorVm.bootMs();
      separateBooted.push(await createStartFirstOutput(context, root, echo, `vm-boot-first-${round}`, BOOTED));
      await floorVm.bootMs();
      togetherBooted.push(await firstOutput(BOOTED, `vm-boot-run-${round}`));
      const started = process.hrtime.bigint();
      cli(context, root, ['create', '--bundle', truth, `vm-cycle-${round}`]);
      cli(context, root, ['start', `vm-cycle-${round}`]);
      waitStopped(context, root, `vm-cycle-${round}`);
      cli(context, root, ['delete', `vm-cycle-${round}`]);
      cycle.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  } finally {
    floorVm.dispose();
  }
  const memory = await memoryAfterBoot(context, root, sleeper);

  const started = process.hrtime.bigint();
  let next = 0;
  await Promise.all(Array.from({ length: AT_ONCE }, async () => {
    while (next < SANDBOXES) {
      await runbox(context, ['--root', root, 'run', '--bundle', truth, `vm-many-${next++}`]);
    }
  }));
  const perMinute = SANDBOXES / (Number(process.hrtime.bigint() - started) / 6e10);

  const floor = median(floors);
  const row = (name: string, ms: number, target = '') => `| ${name} | ${ms.toFixed(0)} ms | ${(ms / floor).toFixed(2)}× | ${target} |`;
  const targetRow = (name: string, ms: number) => row(name, ms, verdict(ms / floor, 1.3, '×'));
  return [
    `qemu driver, accel tcg; median of ${ROUNDS} rounds (2 measured floor boots a round, each measured boot right after a floor boot), floor and runbox interleaved; floor = QEMU booting the guest kernel into an init that powers off at once (spawn to exit). "Restored": from the template the first VM built (the default); "booted": templates off`,
    '',
    '| measure | value | ÷ floor | target |',
    '| --- | ---: | ---: | --- |',
    row('floor: QEMU start → guest init → exit', floor),
    targetRow('restored: `runbox create` then `runbox start` → first output', median(separate)),
    targetRow('restored: `runbox run` (create+start in one call) → first output', median(together)),
    row('booted: `runbox create` then `runbox start` → first output', median(separateBooted)),
    row('booted: `runbox run` → first output', median(togetherBooted)),
    row('the first `runbox run` (boots and snapshots the template) → first output', firstEver),
    row('restored: create→start→(state until stopped)→delete of `true`', median(cycle)),
    `| QEMU RSS after start (host), restored | ${memory.qemuMib.toFixed(1)} MiB (${memory.qemuOwnMib.toFixed(1)} MiB its own, the rest the template's pages, shared) | | |`,
    `| agent RSS in the guest | ${memory.agentMib.toFixed(2)} MiB | | ${verdict(memory.agentMib, 2, ' MiB', '<')} |`,
    `| ${SANDBOXES} sandboxes (\`runbox run\` of \`true\`, restored), ${AT_ONCE} at a time | ${perMinute.toFixed(1)} sandboxes/min | | |`,
    '',
  ].join('\n');
}
