// Mounts under a directory, from /proc/self/mountinfo, and taking them down: what removing a directory that may
// hold mounts (a lazily loaded bundle's rootfs) does first.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** mountinfo's octal escapes (\040 for a space) undone. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

export interface MountInfo {
  mountPoint: string;
  fstype: string;
  /** The filesystem's own options (an overlay's lowerdir, upperdir, …), each value unescaped. */
  superOptions: Map<string, string>;
}

/** This process's mounts, in /proc/self/mountinfo's order (a later mount on a point covers an earlier one). */
export function mountInfo(): MountInfo[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((line) => {
    const [before = '', after = ''] = line.split(' - ');
    const [fstype = '', , superOptions = ''] = after.split(' ');
    return {
      mountPoint: unescape(before.split(' ')[4] ?? ''),
      fstype,
      superOptions: new Map(superOptions.split(',').map((option) => {
        const equals = option.indexOf('=');
        return equals < 0 ? [option, ''] : [option.slice(0, equals), unescape(option.slice(equals + 1))];
      })),
    };
  });
}

/** Whether something is mounted at `path` (exactly there). */
export function isMountPoint(path: string): boolean {
  return mountInfo().some((mount) => mount.mountPoint === path);
}

/** Mount points at or under `dir`, deepest first. */
export function mountPointsUnder(dir: string): string[] {
  const prefix = dir.replace(/\/$/, '');
  return mountInfo()
    .map((mount) => mount.mountPoint)
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
