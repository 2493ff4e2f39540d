// A VM's snapshot, taken once its guest is idle, and a VM restored from one, through QEMU's migration (QMP).
// The guest's RAM is not in the snapshot: it is in the file the VM's memory backend maps (qemu-command.ts
// `memory`), which `x-ignore-shared` tells the migration to leave alone. What the snapshot holds is the device and
// CPU state, some 60 KB.
import { createWriteStream, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { QmpClient } from './qemu-qmp.js';

const IGNORE_SHARED = { capabilities: [{ capability: 'x-ignore-shared', state: true }] };

/** QMP on a QEMU just spawned: its socket appears a moment after it starts. */
export async function connectQmpWhenUp(path: string, signal: AbortSignal): Promise<QmpClient> {
  for (;;) {
    try {
      return await QmpClient.connect(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw error;
      await sleep(5);
    }
  }
}

interface MigrationStatus {
  status?: string;
  'error-desc'?: string;
}

/** Waits for the migration (out or in) to complete; throws with QEMU's reason if it fails. */
async function migrationCompleted(qmp: QmpClient, what: string, pollMs: number): Promise<void> {
  for (;;) {
    const migration = (await qmp.execute('query-migrate')) as MigrationStatus;
    if (migration.status === 'completed') return;
    if (migration.status === 'failed' || migration.status === 'cancelled') {
      throw new Error(`${what} failed: ${migration['error-desc'] ?? migration.status}`);
    }
    await sleep(pollMs);
  }
}

/**
 * Waits until every vCPU of the guest is idle (halted, as the kernel is when nothing is left to do), then stops
 * the VM. A guest snapshotted while it was still taking in a device's interrupt (the end of the template's
 * session, say) can come back without it: the clone's guest would never hear of its host.
 */
export async function stopWhenIdle(qmp: QmpClient, timeoutMs = 10_000): Promise<void> {
  const allHalted = async () => {
    const registers = (await qmp.execute('human-monitor-command', { 'command-line': 'info registers -a' })) as string;
    const halted = registers.match(/\bHLT=(\d)/g) ?? [];
    return halted.length > 0 && halted.every((flag) => flag.endsWith('1'));
  };
  // Twice in a row, a moment apart: an interrupt raised just before the first look may not have woken a vCPU yet.
  for (const until = Date.now() + timeoutMs; ;) {
    if (await allHalted()) {
      await sleep(5);
      if (await allHalted()) break;
    }
    if (Date.now() > until) throw new Error('the guest never went idle');
    await sleep(2);
  }
  await qmp.execute('stop');
}

/**
 * Saves the VM's state into `statePath` (a stopped VM: see stopWhenIdle). QEMU 7.2 migrates to a socket, an fd
 * passed over QMP, or a shell command: a socket of ours keeps a shell out of it.
 */
export async function saveSnapshot(qmp: QmpClient, statePath: string): Promise<void> {
  const socketPath = `${statePath}.sock`;
  let received: Promise<void> | undefined;
  const server = createServer((connection: Socket) => {
    server.close();
    const file = createWriteStream(statePath, { mode: 0o600 });
    received = new Promise((resolve, reject) => {
      file.on('finish', resolve);
      file.on('error', reject);
      connection.on('error', reject);
    });
    connection.pipe(file);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  try {
    await qmp.execute('migrate-set-capabilities', IGNORE_SHARED);
    await qmp.execute('migrate', { uri: `unix:${socketPath}` });
    await migrationCompleted(qmp, 'the snapshot', 5);
    if (!received) throw new Error('the snapshot failed: QEMU never connected');
    await received;
  } finally {
    server.close();
    rmSync(socketPath, { force: true });
  }
}

/**
 * Restores a snapshot into a QEMU started with `-incoming defer` (and the template's devices and memory file),
 * from `fd`, an fd QEMU inherited, and runs the VM once the state is in.
 */
export async function restoreSnapshot(qmp: QmpClient, fd: number): Promise<void> {
  await qmp.execute('migrate-set-capabilities', IGNORE_SHARED);
  await qmp.execute('migrate-incoming', { uri: `fd:${fd}` });
  await migrationCompleted(qmp, 'the restore', 1);
  await qmp.execute('cont');
}
