import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, cpSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { defaultSpec } from '../../src/oci/default-spec.js';
import './private-pool.js';
import type { Spec } from '../../src/oci/spec.js';

export const PROJECT = fileURLToPath(new URL('../../../', import.meta.url));
export const RUNBOX = join(PROJECT, 'bin', 'runbox');
export const FIXTURE_ROOTFS = join(PROJECT, 'fixtures', 'busybox', 'build', 'rootfs');

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A private state root and a place for bundles, removed (containers included) when the test ends. */
export class TestEnv {
  readonly dir: string;
  readonly root: string;
  private count = 0;

  constructor(t: ExecutionContext) {
    this.dir = mkdtempSync(join(tmpdir(), 'runbox-test-'));
    this.root = join(this.dir, 'state');
    t.teardown(() => this.cleanup());
  }

  /** A bundle with a copy of the busybox rootfs and a config.json: runbox spec's, minus the terminal. */
  bundle(edit: (spec: Spec) => void = () => {}): string {
    const bundle = join(this.dir, `bundle-${++this.count}`);
    cpSync(FIXTURE_ROOTFS, join(bundle, 'rootfs'), { recursive: true, verbatimSymlinks: true });
    const spec = defaultSpec();
    spec.process!.terminal = false;
    spec.root!.readonly = false;
    edit(spec);
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
    return bundle;
  }

  /** A container running `args` in the background (`run -d`); the test fails here if it does not start. */
  async running(args: string[], edit: (spec: Spec) => void = () => {}): Promise<{ id: string; bundle: string }> {
    const bundle = this.bundle((spec) => {
      spec.process!.args = args;
      edit(spec);
    });
    const id = this.id();
    const result = await this.run(['run', '-d', '--bundle', bundle, id]);
    if (result.code !== 0) throw new Error(`run -d ${id} failed: ${result.stderr}`);
    return { id, bundle };
  }

  id(prefix = 'c'): string {
    return `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}-${++this.count}`;
  }

  run(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<Result> {
    return runCommand(RUNBOX, ['--root', this.root, ...args], options);
  }

  runSync(args: string[]): Result {
    const result = spawnSync(RUNBOX, ['--root', this.root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  async state(id: string): Promise<Record<string, unknown>> {
    const result = await this.run(['state', id]);
    if (result.code !== 0) throw new Error(`state ${id} failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as Record<string, unknown>;
  }

  async waitForStatus(id: string, status: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await this.state(id);
      if (state.status === status) return state;
      if (Date.now() > deadline) throw new Error(`container ${id} is ${String(state.status)}, not ${status}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private cleanup(): void {
    const list = this.runSync(['list', '-q']);
    for (const id of list.stdout.split('\n').filter(Boolean)) this.runSync(['delete', '--force', id]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Runs a command with its stdout and stderr in files, not pipes: a container made by `create` keeps the stdio
 * it was given (as with runc), so a pipe would stay open until the container exits.
 */
export function runCommand(
  command: string,
  args: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number; cwd?: string } = {},
): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-out-'));
  const outPath = join(dir, 'stdout');
  const errPath = join(dir, 'stderr');
  const out = openSync(outPath, 'w');
  const err = openSync(errPath, 'w');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', out, err],
    });
    closeSync(out);
    closeSync(err);
    if (child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(options.input);
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout ?? 60_000);
    child.on('error', (error) => {
      rmSync(dir, { recursive: true, force: true });
      reject(error);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      const result = { code, stdout: readFileSync(outPath, 'utf8'), stderr: readFileSync(errPath, 'utf8') };
      rmSync(dir, { recursive: true, force: true });
      resolve(result);
    });
  });
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

/** Host processes whose command line mentions `needle` (to prove nothing was left behind). */
export function processesMentioning(needle: string): number[] {
  const result = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return result.stdout
    .split('\n')
    .filter((line) => line.includes(needle) && !line.includes('ps -eo'))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}

/** What `look` finds once the processes on their way out have had up to 2 s to go. */
async function leftAfterEnding(look: () => number[]): Promise<number[]> {
  for (let i = 0; i < 40 && look().length; i++) await new Promise((r) => setTimeout(r, 50));
  return look();
}

/**
 * processesMentioning, once those still ending have had a moment to go: a call handed to a pooled worker returns
 * once the worker closed its end, a moment before ps stops listing it under load.
 */
export function processesLeftMentioning(needle: string): Promise<number[]> {
  return leftAfterEnding(() => processesMentioning(needle));
}

/** Live processes whose environment holds `entry` (NAME=VALUE): what a CLI run with a marker left running. */
export function processesWithEnvironment(entry: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(entry)) pids.push(Number(name));
    } catch {
      // Gone meanwhile, or a kernel thread.
    }
  }
  return pids;
}

/**
 * The processes started, directly or not, by a CLI run with RUNBOX_TEST_MARK=mark in its environment (the
 * container's own processes have config.json's environment), once those on their way out have had 2 s to go.
 */
export function processesMarked(mark: string): Promise<number[]> {
  return leftAfterEnding(() => processesWithEnvironment(`RUNBOX_TEST_MARK=${mark}`));
}

export function mountsUnder(path: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.split(' ')[4]?.startsWith(path));
}

/** The message of a runc-style error line (`time=… level=error msg="…"`), unquoted. */
export function errorMessage(stderr: string): string {
  const match = /level=error msg=("(?:[^"\\]|\\.)*")/.exec(stderr);
  return match ? (JSON.parse(match[1]!) as string) : stderr;
}
