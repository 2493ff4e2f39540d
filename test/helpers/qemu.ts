import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** An initramfs whose /init never reports anything: a guest that boots a kernel and then hangs. */
export function hangingInitrd(dir: string): string {
  const tree = join(dir, 'hanging-initrd');
  mkdirSync(join(tree, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(tree, 'bin', 'busybox'));
  writeFileSync(join(tree, 'init'), '#!/bin/busybox sh\nexec /bin/busybox sleep 100000\n');
  chmodSync(join(tree, 'init'), 0o755);
  const initrd = join(dir, 'hanging-initrd.cpio');
  execFileSync('sh', ['-c', `cd '${tree}' && find . | /bin/busybox cpio -o -H newc > '${initrd}'`], { stdio: ['ignore', 'ignore', 'pipe'] });
  return initrd;
}

/**
 * A qemu-system-x86_64 in `dir` that stops its caller (SIGSTOP to its parent) when it is spawned as a template's
 * clone, before the caller can restore it: a clone that will wait for ever, as if its caller had died right then.
 */
export function clonePausingQemu(dir: string): string {
  const qemu = join(dir, 'qemu-system-x86_64');
  writeFileSync(qemu, '#!/bin/sh\ncase " $* " in *" -incoming "*) kill -STOP $PPID ;; esac\nexec /usr/bin/qemu-system-x86_64 "$@"\n', { mode: 0o755 });
  return qemu;
}

/** A file of /proc/PID, or '' once the process is gone (ps lists processes that end a moment later). */
export function procFile(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return '';
  }
}

/** Whether the process is stopped (SIGSTOP); false once it is gone. */
export function isStopped(pid: number): boolean {
  return procFile(pid, 'stat').split(') ')[1]?.startsWith('T') ?? false;
}

/** SIGKILLs each process still there. */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
