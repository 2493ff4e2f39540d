// `containerd-shim-runbox-v2 delete`: containerd's clean-up after a shim that is gone (killed, crashed) or done.
// Whatever the dead shim left — the sandbox with the container's processes, the rootfs mount, its private
// directory — is removed, and a DeleteResponse goes to stdout. A shim that still serves (another container
// of its group) is left alone: it cleans up after its own tasks.
import { existsSync, lstatSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isProcessAlive } from '../host/host-process.js';
import { encodeMessage } from '../rpc/protos.js';
import { isServed } from '../host/unix-socket.js';
import { describe } from '../errors/errors.js';
import { readBundleRecord, readShimAddress, removeBundleRecord } from './bundle-record.js';
import { timestamp } from './event-forwarder.js';
import type { ShimFlags } from './shim-flags.js';
import { sandboxDir, shimStateDir } from './shim-socket.js';
import { unmountRootfs } from './rootfs-mounts.js';
import { KILLED_EXIT_STATUS } from '../generated/facts.js';

/** Asks every driver to end what a boot left in the sandbox directory of a shim that died during it. */
async function endAbandonedBoot(dir: string, warn: (message: string) => void): Promise<void> {
  if (!existsSync(dir)) return;
  const { endAbandonedSandboxes } = await import('../drivers/drivers.js');
  await endAbandonedSandboxes(dir, warn);
}

export async function deleteAfterShim(flags: ShimFlags, warn: (message: string) => void): Promise<Buffer> {
  const record = readBundleRecord(flags.bundle);
  const address = readShimAddress(flags.bundle);
  const socket = address?.replace(/^unix:\/\//, '');
  const shimAlive = socket !== undefined && await isServed(socket);
  if (record && !shimAlive) {
    try {
      // Only a shim that died leaves a record: the normal path does not load the drivers.
      const { getDriver } = await import('../drivers/drivers.js');
      await (await getDriver(record.sandbox.driver)).cleanup(record.sandbox);
    } catch (error) {
      warn(`cleaning up the sandbox of ${flags.id}: ${describe(error)}`);
    }
    if (isProcessAlive(record.pid, record.pidStartTime)) {
      try {
        process.kill(record.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    rmSync(record.stateDir, { recursive: true, force: true });
  }
  if (!shimAlive) {
    // The socket of a shim that was killed stays behind: nobody serves it any more.
    if (socket && lstatSync(socket, { throwIfNoEntry: false })?.isSocket()) rmSync(socket, { force: true });
    // And so does its private directory, even when it had no task (killed between start and Create), with
    // whatever a boot it did not live to record left there (a microVM clone waiting for its restore).
    if (socket) {
      await endAbandonedBoot(sandboxDir(shimStateDir(socket)), warn);
      rmSync(shimStateDir(socket), { recursive: true, force: true });
    }
    await unmountRootfs(join(flags.bundle, 'rootfs'));
    removeBundleRecord(flags.bundle);
  }
  return encodeMessage('containerd.task.v2.DeleteResponse', {
    pid: record?.pid ?? 0,
    exitStatus: KILLED_EXIT_STATUS,
    exitedAt: timestamp(new Date()),
  });
}
