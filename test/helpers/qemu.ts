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

/**
 * A qemu-system-x86_64 in `dir` that plays a KVM of the given kind, whatever this machine's own: given
 * `-accel kvm`, it aborts at once with QEMU's words seen on hosts whose /dev/kvm opens but cannot run the guest
 * (`aborts`), or starts a VM that never runs, as such a host's QEMU stays paused (`hangs`: the real QEMU on TCG,
 * paused with -S), or runs the guest (`works`: the real QEMU on TCG). Anything else runs the real QEMU, `-accel tcg`
 * included. Each call's argv is a line of `dir/qemu-calls` (qemuCalls).
 */
export function qemuWithKvmThat(kvm: 'aborts' | 'hangs' | 'works', dir: string): string {
  const qemu = join(dir, 'qemu-system-x86_64');
  const onKvm = kvm === 'aborts'
    ? [
      "  echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2",
      "  echo \"qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion \\`ret == cpu->kvm_msr_buf->nmsrs' failed.\" >&2",
      '  ulimit -c 0; kill -ABRT $$',
    ]
    : [
      '  args=(); skip=0',
      '  for arg in "$@"; do',
      '    if [ $skip = 1 ]; then skip=0; continue; fi',
      '    case "$arg" in kvm) arg=tcg ;; -cpu) skip=1; continue ;; esac',
      '    args+=("$arg")',
      '  done',
      `  exec /usr/bin/qemu-system-x86_64 "\${args[@]}"${kvm === 'hangs' ? ' -S' : ''}`,
    ];
  writeFileSync(qemu, [
    '#!/bin/bash',
    `echo "$*" >> '${join(dir, 'qemu-calls')}'`,
    'case " $* " in *" -accel kvm "*)',
    ...onKvm,
    'esac',
    'exec /usr/bin/qemu-system-x86_64 "$@"',
    '',
  ].join('\n'), { mode: 0o755 });
  return qemu;
}

/**
 * The VMs a qemuWithKvmThat started so far, in order: the acceleration each asked for, and its whole argv (not the
 * queries that start no VM: `--version`, `-machine none -object help`, which runbox features asks for its TEEs).
 */
export function qemuCalls(dir: string): Array<{ accel: string; argv: string }> {
  let text: string;
  try {
    text = readFileSync(join(dir, 'qemu-calls'), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((argv) => argv && !/^(--version|-machine none)\b/.test(argv)).map((argv) => ({ accel: /-accel (\w+)/.exec(argv)?.[1] ?? '', argv }));
}
