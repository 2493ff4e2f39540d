import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
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
