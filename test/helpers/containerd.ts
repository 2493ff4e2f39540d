// A private containerd for the shim tests: config, root, state and sockets under a temporary directory, CRI
// disabled (or enabled, with the settings test/helpers/cri.ts gives, in a network namespace of the test's), the
// project's bin/ first on its PATH (so `--runtime io.containerd.runbox.v2` finds our shim), the busybox fixture
// imported with `ctr images import`. Stopped, and everything it started removed, at teardown.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isProcessAlive, processStartTime } from '../../src/host/host-process.js';
import { inNetns, type NetNamespace } from './netns.js';
import { killAll } from './qemu.js';
import { PROJECT, runCommand, type Result } from './runbox.js';
import type { TeardownOwner } from './teardown.js';

export const RUNBOX_RUNTIME = 'io.containerd.runbox.v2';
export const IMAGE = 'docker.io/library/busybox:latest';
const FIXTURE_OCI = join(PROJECT, 'fixtures', 'busybox', 'build', 'oci');

/**
 * SIGKILLs shims and waits until they are gone, as containerd runs a shim's `delete` only once its connection to
 * the shim has closed: a `delete` run while a shim is still dying finds its socket served, and leaves it be.
 */
export async function killShims(pids: number[]): Promise<void> {
  const ending = pids.map((pid) => ({ pid, startTime: processStartTime(pid) }));
  killAll(pids);
  for (let i = 0; i < 100 && ending.some(({ pid, startTime }) => isProcessAlive(pid, startTime)); i++) await sleep(20);
}

/** Host pids whose command line contains every needle. */
export function pidsWith(...needles: string[]): number[] {
  const result = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return result.stdout.split('\n')
    .filter((line) => line.trim() && needles.every((needle) => line.includes(needle)) && !line.includes('ps -eo'))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}

export interface ContainerdOptions {
  /** More environment for containerd, and so for the shims it starts. */
  env?: NodeJS.ProcessEnv;
  /** config.toml lines for the CRI plugin, which is enabled only when they are given. */
  cri?: (dir: string) => string[];
  /** The network namespace containerd runs in (and so CNI and every pod network): the test's own by default. */
  netns?: NetNamespace;
  /** Whether the busybox fixture is imported into the default namespace (default true). */
  busybox?: boolean;
}

export class PrivateContainerd {
  readonly dir: string;
  readonly address: string;
  readonly fifoDir: string;
  private daemon: ChildProcess | undefined;
  private count = 0;
  private readonly env: NodeJS.ProcessEnv;
  private readonly netns: NetNamespace | undefined;

  private constructor(options: ContainerdOptions) {
    // Short: shim and agent socket paths are built from it.
    this.dir = mkdtempSync('/tmp/rbx-ctd-');
    this.address = join(this.dir, 'containerd.sock');
    this.fifoDir = join(this.dir, 'fifo');
    this.env = options.env ?? {};
    this.netns = options.netns;
    writeFileSync(join(this.dir, 'config.toml'), [
      'version = 2',
      `root = "${this.dir}/root"`,
      `state = "${this.dir}/state"`,
      ...(options.cri ? [] : ['disabled_plugins = ["io.containerd.grpc.v1.cri"]']),
      '[grpc]',
      `  address = "${this.address}"`,
      '[debug]',
      `  address = "${this.dir}/debug.sock"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${this.dir}/opt"`,
      ...(options.cri?.(this.dir) ?? []),
      '',
    ].join('\n'));
  }

  /** Starts a private containerd with the busybox fixture imported; torn down with the test (or bench) owner. */
  static async start(owner: TeardownOwner, env: NodeJS.ProcessEnv = {}, options: Omit<ContainerdOptions, 'env'> = {}): Promise<PrivateContainerd> {
    const containerd = new PrivateContainerd({ ...options, env });
    owner.teardown(() => containerd.destroy());
    await containerd.startDaemon();
    if (options.busybox === false) return containerd;
    const archive = join(containerd.dir, 'busybox.tar');
    spawnSync('tar', ['-C', FIXTURE_OCI, '-cf', archive, '.']);
    const imported = await containerd.ctr(['images', 'import', '--base-name', 'docker.io/library/busybox', archive]);
    if (imported.code !== 0) throw new Error(`ctr images import failed: ${imported.stderr}`);
    rmSync(archive);
    return containerd;
  }

  async startDaemon(): Promise<void> {
    const log = openSync(join(this.dir, 'containerd.log'), 'a');
    const [command, args] = inNetns(this.netns, 'containerd', ['--config', join(this.dir, 'config.toml')]);
    this.daemon = spawn('setsid', [command, ...args], {
      stdio: ['ignore', log, log],
      env: { ...process.env, ...this.env, PATH: `${join(PROJECT, 'bin')}:${process.env.PATH}` },
    });
    closeSync(log);
    for (let i = 0; i < 200; i++) {
      const version = spawnSync('ctr', ['-a', this.address, 'version'], { encoding: 'utf8' });
      if (version.status === 0) return;
      if (this.daemon.exitCode !== null) break;
      await sleep(50);
    }
    throw new Error(`containerd did not start: ${this.log().slice(-2000)}`);
  }

  async stopDaemon(): Promise<void> {
    const daemon = this.daemon;
    if (!daemon || daemon.exitCode !== null) return;
    const exited = new Promise((resolve) => daemon.once('exit', resolve));
    daemon.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
  }

  async restartDaemon(): Promise<void> {
    await this.stopDaemon();
    await this.startDaemon();
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'containerd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** containerd's warnings and errors about these containers (a failed shim clean-up names its stderr there). */
  complaints(ids: string[]): string {
    const lines = this.log().split('\n').filter((line) => /level=(warning|error)/.test(line) && ids.some((id) => line.includes(id)));
    return lines.length ? `containerd said:\n${lines.join('\n')}` : 'containerd said nothing about them';
  }

  id(prefix = 'c'): string {
    return `${prefix}-${process.pid}-${++this.count}-${Math.random().toString(36).slice(2, 6)}`;
  }

  ctr(args: string[], options: { input?: string; timeout?: number } = {}): Promise<Result> {
    return runCommand('ctr', ['-a', this.address, ...args], options);
  }

  /** `ctr -n NAMESPACE …` */
  ctrIn(namespace: string, args: string[]): Promise<Result> {
    return this.ctr(['-n', namespace, ...args]);
  }

  /** `ctr run --runtime io.containerd.runbox.v2 IMAGE ID ARGS…` with extra run flags before the image. */
  run(id: string, args: string[], flags: string[] = [], runtime = RUNBOX_RUNTIME): Promise<Result> {
    return this.ctr(['run', '--fifo-dir', this.fifoDir, '--runtime', runtime, ...flags, IMAGE, id, ...args]);
  }

  /** The tasks `ctr task ls` shows, by id: their pid and status. */
  async tasks(namespace = 'default'): Promise<Map<string, { pid: number; status: string }>> {
    const listed = await this.ctrIn(namespace, ['task', 'ls']);
    const tasks = new Map<string, { pid: number; status: string }>();
    for (const line of listed.stdout.trim().split('\n').slice(1)) {
      const [id, pid, status] = line.trim().split(/\s+/);
      if (id) tasks.set(id, { pid: Number(pid), status: status! });
    }
    return tasks;
  }

  async waitForStatus(id: string, status: string, timeoutMs = 15_000): Promise<void> {
    for (let waited = 0; waited < timeoutMs; waited += 100) {
      if ((await this.tasks()).get(id)?.status === status) return;
      await sleep(100);
    }
    throw new Error(`task ${id} did not reach ${status}: ${JSON.stringify([...(await this.tasks())])}`);
  }

  /** `ctr events` from now on (stopped with the owner): the topics seen so far for a container, and all the text. */
  async watchEvents(owner: TeardownOwner): Promise<{ topics(id: string): string[]; at(id: string, topic: string): string | undefined; text(): string }> {
    const events = spawn('ctr', ['-a', this.address, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
    owner.teardown(() => events.kill());
    let seen = '';
    events.stdout!.on('data', (chunk: Buffer) => (seen += chunk.toString()));
    await sleep(300);
    return {
      topics: (id) => [...seen.matchAll(/(\/tasks\/[a-z-]+)\s.*"container_id":"([^"]+)"/g)].filter((m) => m[2] === id).map((m) => m[1]!),
      // When containerd says the event happened (its time, nanoseconds padded so that the strings sort), for
      // events that may be delivered in another order than they happened.
      at: (id, topic) => [...seen.matchAll(/^(\S+ \d\d:\d\d:\d\d)(?:\.(\d+))? \S+ UTC \S+ (\/tasks\/[a-z-]+) .*"container_id":"([^"]+)"/gm)]
        .filter((m) => m[3] === topic && m[4] === id).map((m) => `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}`)[0],
      text: () => seen,
    };
  }

  /** Our shims serving this containerd. */
  shimPids(): number[] {
    return pidsWith('containerd-shim-runbox-v2', this.address);
  }

  private async destroy(): Promise<void> {
    if (this.daemon?.exitCode === null) {
      const namespaces = (await this.ctr(['namespaces', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
      for (const namespace of namespaces) {
        for (const id of (await this.tasks(namespace)).keys()) {
          await this.ctrIn(namespace, ['task', 'kill', '-s', 'KILL', id]);
          await this.ctrIn(namespace, ['task', 'delete', '-f', id]);
        }
        const containers = await this.ctrIn(namespace, ['containers', 'ls', '-q']);
        for (const id of containers.stdout.split('\n').filter(Boolean)) await this.ctrIn(namespace, ['containers', 'rm', id]);
      }
    }
    await this.stopDaemon();
    for (const pid of this.shimPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    // A shim killed here leaves what containerd would clean up with `delete` (its socket, its sandbox): so does this.
    const tasksDir = join(this.dir, 'state', 'io.containerd.runtime.v2.task');
    for (const namespace of existsSync(tasksDir) ? readdirSync(tasksDir) : []) {
      for (const id of readdirSync(join(tasksDir, namespace))) {
        const bundle = join(tasksDir, namespace, id);
        spawnSync(join(PROJECT, 'bin', 'containerd-shim-runbox-v2'), ['-namespace', namespace, '-address', this.address, '-id', id, '-bundle', bundle, 'delete'], { cwd: bundle, stdio: 'ignore' });
      }
    }
    // Whatever is still mounted under the directory (snapshots, rootfs) goes before the directory does.
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
      .map((line) => line.split(' ')[4] ?? '').filter((point) => point.startsWith(this.dir)).reverse();
    for (const point of mounts) spawnSync('umount', ['-l', point]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
