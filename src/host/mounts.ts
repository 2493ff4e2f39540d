// Mounts under a directory, from /proc/self/mountinfo, and taking them down: what removing a directory that may
// hold mounts (a lazily loaded bundle's rootfs) does first.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** Mount points at or under `dir`, deepest first. */
export function mountPointsUnder(dir: string): string[] {
  const prefix = dir.replace(/\/$/, '');
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => unescape(line.split(' ')[4] ?? ''))
    .filter((point) => point === prefix || point.startsWith(`${prefix}/`))
    .sort((a, b) => b.length - a.length);
}

/** Detaches every mount at or under `dir` (lazily: processes that hold one keep it); errors name the mount point. */
export function unmountUnder(dir: string): void {
  for (const point of mountPointsUnder(dir)) {
    const result = spawnSync('umount', ['-l', point], { encoding: 'utf8' });
    if (result.status !== 0 && mountPointsUnder(point).includes(point)) throw new Error(`cannot unmount ${point}: ${result.stderr.trim()}`);
  }
}
