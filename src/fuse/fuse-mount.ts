// Mounting a FUSE filesystem without libfuse or fusermount: /dev/fuse opened here, its descriptor handed to
// mount(8) as `fd=3` (as root: `mount -i` so that no mount helper runs); unmounting it lazily.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/** Opens /dev/fuse and mounts a read-only FUSE filesystem of type `fuse.NAME` on `dir`; returns the descriptor. */
export async function mountFuse(dir: string, name: string): Promise<number> {
  const fd = openSync('/dev/fuse', 'r+');
  try {
    const options = `fd=3,rootmode=40000,user_id=0,group_id=0,ro,default_permissions,max_read=${1024 * 1024}`;
    await run('mount', ['-i', '-n', '-t', `fuse.${name}`, '-o', options, name, dir], fd);
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** Detaches the mount at `dir` (lazily: users keep what they hold open). */
export async function unmount(dir: string): Promise<void> {
  await run('umount', ['-l', dir]);
}

function run(command: string, args: string[], fd3?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe', ...(fd3 === undefined ? [] : [fd3])] });
    let stderr = '';
    child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.at(-1)}: ${stderr.trim() || `exit ${code}`}`))));
  });
}
