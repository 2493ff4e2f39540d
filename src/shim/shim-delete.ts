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
  // Every step is tried whatever the others did: containerd removes the bundle only when this command answers,
  // within its clean-up timeout (5 s in 1.6), so one that fails (or a step that races another container's delete
  // of the same pod) must not keep the rest from being done, nor the answer from being given.
  const step = async (what: string, body: () => unknown): Promise<void> => {
    try {
      await body();
    } catch (error) {
      warn(`${what} of ${flags.id}: ${describe(error)}`);
    }
  };
  const record = readBundleRecord(flags.bundle);
  const address = readShimAddress(flags.bundle);
  const socket = address?.replace(/^unix:\/\//, '');
  const shimAlive = socket !== undefined && await isServed(socket);
  if (record && !shimAlive) {
    await step('cleaning up the sandbox', async () => {
      // Only a shim that died leaves a record: the normal path does not load the drivers.
      const { getDriver } = await import('../drivers/drivers.js');
      await (await getDriver(record.sandbox.driver)).cleanup(record.sandbox);
    });
    if (isProcessAlive(record.pid, record.pidStartTime)) {
      try {
        process.kill(record.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await step('removing the sandbox\'s state', () => rmSync(record.stateDir, { recursive: true, force: true }));
  }
  if (!shimAlive) {
    // The socket of a shim that was killed stays behind: nobody serves it any more.
    await step('removing the shim\'s socket', () => {
      if (socket && lstatSync(socket, { throwIfNoEntry: false })?.isSocket()) rmSync(socket, { force: true });
    });
    // And so does its private directory, even when it had no task (killed between start and Create), with
    // whatever a boot it did not live to record left there (a microVM clone waiting for its restore).
    if (socket) {
      await step('ending an abandoned boot', () => endAbandonedBoot(sandboxDir(shimStateDir(socket)), warn));
      await step('removing the shim\'s directory', () => rmSync(shimStateDir(socket), { recursive: true, force: true, maxRetries: 3 }));
    }
    await step('unmounting the rootfs', () => unmountRootfs(join(flags.bundle, 'rootfs')));
    await step('removing the bundle record', () => removeBundleRecord(flags.bundle));
  }
  return encodeMessage('containerd.task.v2.DeleteResponse', {
    pid: record?.pid ?? 0,
    exitStatus: KILLED_EXIT_STATUS,
    exitedAt: timestamp(new Date()),
  });
}
