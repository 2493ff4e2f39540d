// runc's `delete`: a stopped container's sandbox, process and record end, and its poststop hooks run; with
// --force a live one ends too, and a container whose state.json is damaged is ended from its directory alone.
import { ContainerNotFoundError, describe, RuntimeError, StateDamageError } from '../errors/errors.js';
import type { Spec } from '../oci/spec.js';
import type { RuntimeContext } from './runtime-context.js';
import type { ContainerRecord } from './state-store.js';

export async function deleteContainer(context: RuntimeContext, id: string, force: boolean): Promise<void> {
  const { store, logger } = context;
  const lock = await store.lock(id);
  if (!lock) {
    if (force) return;
    throw new ContainerNotFoundError(id);
  }
  try {
    let record: ContainerRecord;
    try {
      record = store.read(id)!;
    } catch (error) {
      if (!force || !(error instanceof StateDamageError)) throw error;
      // Never through the record, which may name another container's sandbox.
      logger.warn(`container ${id}: ${error.damage}: ending what its directory holds`);
      await context.endAbandoned(id);
      store.remove(id);
      return;
    }
    const status = context.currentStatus(record);
    // runtime.md: deleting a container that is not stopped is an error (runc deletes a created one anyway).
    if ((status === 'running' || status === 'paused' || status === 'created') && !force) {
      throw new RuntimeError(`cannot delete container ${id} that is not stopped: ${status}`, { containerId: id });
    }
    await endSandbox(context, record);
    let spec: Spec | undefined;
    try {
      spec = store.readConfig(id);
    } catch {
      spec = undefined;
    }
    if (spec && status !== 'creating') await context.runPoststop(record, spec);
    store.remove(id);
  } finally {
    lock.release();
  }
}

/** Ends the container and its sandbox, reachable or not. */
async function endSandbox(context: RuntimeContext, record: ContainerRecord): Promise<void> {
  if (record.sandbox) {
    const driver = await context.driver(record.driver, record.id);
    if (driver.isAlive(record.sandbox)) {
      try {
        const sandbox = await driver.connect(record.sandbox);
        await sandbox.deleteContainer(record.id).catch(() => {});
        await sandbox.destroy();
      } catch (error) {
        context.logger.warn(`container ${record.id}: ${describe(error)}`);
      }
    }
    await driver.cleanup(record.sandbox);
  } else if (record.status === 'creating') {
    // Its create died during the boot (a live one would hold the container's lock).
    const driver = await context.driver(record.driver, record.id);
    await driver.abandonedBoot?.(context.store.dir(record.id));
  }
  context.killLeftover(record);
}
