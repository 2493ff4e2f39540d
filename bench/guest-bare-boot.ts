// A bare microVM boot: the runbox guest kernel and its parameters with an initramfs of one's own (a test init,
// the floor benchmark's init) and none of the driver. QEMU runs the fastest configuration known under TCG
// (../shared facts) with the guest's console on its stdout, and exits when the guest powers off.
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { guestAssets } from '../src/drivers/qemu/guest-assets.js';
import { processRssKib } from '../src/host/host-process.js';

const run = promisify(execFile);
const PROJECT = fileURLToPath(new URL('../../', import.meta.url));

/** Compiles C sources (paths relative to the project) into a static binary that can be a VM's /init. */
export async function compileStaticInit(sources: string[], out: string): Promise<void> {
  await run('gcc', ['-static', '-O2', '-std=gnu11', '-Wall', '-Wextra', '-Inative/common', '-o', out, ...sources], { cwd: PROJECT });
}

/** An initramfs with INIT as /init and the guest's kernel modules (scripts/guest/build-initramfs.sh). */
export async function buildInitramfs(init: string, out: string): Promise<void> {
  await run('bash', [`${PROJECT}scripts/guest/build-initramfs.sh`, init, out]);
}

export interface BareBoot {
  initrd: string;
  /** Kernel parameters after the guest's own; NAME=VALUE ones without a dot reach /init as its environment. */
  cmdline?: string[];
  /** More QEMU options: devices, drives, ports. */
  qemuArgs?: string[];
  /** A line on the console that says the guest is up: when it appears, QEMU's RSS is read. */
  marker?: string;
  /** Default 90 s: a shared 2-core machine at load 20 takes 15 s to boot what takes 1 s when quiet. */
  timeoutMs?: number;
  accel?: 'tcg' | 'kvm';
}

export interface BareBootResult {
  console: string;
  /** From spawning QEMU to its exit. */
  exitMs: number;
  /** From spawning QEMU to the marker line, if asked for and seen. */
  markerMs?: number;
  /** QEMU's resident memory when the marker appeared. */
  qemuRssKib?: number;
}

export function bareBootArgs(boot: BareBoot): string[] {
  const assets = guestAssets();
  return [
    '-M', 'microvm', '-accel', boot.accel ?? 'tcg', '-m', '256M', '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', 'stdio',
    '-kernel', assets.kernel, '-initrd', boot.initrd,
    '-append', [...assets.cmdline, ...(boot.cmdline ?? [])].join(' '),
    ...(boot.qemuArgs ?? []),
  ];
}

/** Boots and waits for the guest to power off; a guest still running at the deadline is killed (an error). */
export function bootToPowerOff(boot: BareBoot): Promise<BareBootResult> {
  const args = bareBootArgs(boot);
  const started = performance.now();
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const result: BareBootResult = { console: '', exitMs: 0 };
  let stderr = '';
  qemu.stdout.setEncoding('latin1').on('data', (chunk: string) => {
    result.console += chunk;
    if (boot.marker && result.markerMs === undefined && result.console.includes(boot.marker)) {
      result.markerMs = performance.now() - started;
      result.qemuRssKib = processRssKib(qemu.pid!);
    }
  });
  qemu.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => qemu.kill('SIGKILL'), boot.timeoutMs ?? 90_000);
    qemu.once('error', (error) => { clearTimeout(timer); reject(error); });
    qemu.once('close', (code, signal) => {
      clearTimeout(timer);
      result.exitMs = performance.now() - started;
      if (code === 0) resolve(result);
      else reject(new Error(`QEMU ${signal ? `killed (${signal}) after ${Math.round(result.exitMs)} ms` : `exited ${code}`}: ${stderr.trim() || 'no message'}; console:\n${result.console}`));
    });
  });
}

