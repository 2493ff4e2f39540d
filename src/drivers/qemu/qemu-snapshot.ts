// A VM's snapshot, taken once its guest is idle, and a VM restored from one, through QEMU's migration (QMP).
// The guest's RAM is not in the snapshot: it is in the file the VM's memory backend maps (qemu-command.ts
// `memory`), which `x-ignore-shared` tells the migration to leave alone. What the snapshot holds is the device and
// CPU state, some 60 KB.
import { createWriteStream, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { QmpClient } from './qemu-qmp.js';

const IGNORE_SHARED = { capabilities: [{ capability: 'x-ignore-shared', state: true }] };

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

/** Asks `check` every few ms until it says yes; after `timeoutMs`, fails with `failure`. */
async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, failure: string): Promise<void> {
  for (const until = Date.now() + timeoutMs; !(await check());) {
    if (Date.now() > until) throw new Error(failure);
    await sleep(2);
  }
}

/**
 * Makes the VM quiet and stops it, for its snapshot: QEMU must have seen every client of the chardevs labelled
 * `prefix`… go (a snapshot taken before would remember a host on such a port, and a clone whose own host came
 * to that port before its restore would then tell its guest of no change), and every vCPU must be halted, as the
 * kernel is with nothing left to do (a guest snapshotted while it was still taking in a device's interrupt can
 * come back without it, deaf to its host).
 */
export async function stopWhenQuiet(qmp: QmpClient, prefix: string, timeoutMs = 10_000): Promise<void> {
  await pollUntil(async () => {
    const chardevs = (await qmp.execute('query-chardev')) as Array<{ label: string; filename: string }>;
    return chardevs.every(({ label, filename }) => !label.startsWith(prefix) || filename.startsWith('disconnected:'));
  }, timeoutMs, `a client of the ${prefix} chardevs never went`);
  const allHalted = async () => {
    const registers = (await qmp.execute('human-monitor-command', { 'command-line': 'info registers -a' })) as string;
    const halted = registers.match(/\bHLT=(\d)/g) ?? [];
    return halted.length > 0 && halted.every((flag) => flag.endsWith('1'));
  };
  // Twice in a row, a moment apart: an interrupt raised just before the first look may not have woken a vCPU yet.
  const haltedTwice = async () => {
    if (!(await allHalted())) return false;
    await sleep(5);
    return allHalted();
  };
  await pollUntil(haltedTwice, timeoutMs, 'the guest never went idle');
  await qmp.execute('stop');
}

/**
 * Saves the VM's state into `statePath` (a stopped VM: see stopWhenQuiet). QEMU 7.2 migrates to a socket, an fd
 * passed over QMP, or a shell command: a socket of ours keeps a shell out of it.
 */
export async function saveSnapshot(qmp: QmpClient, statePath: string, timeoutMs = 10_000): Promise<void> {
  const socketPath = `${statePath}.sock`;
  // QEMU may report the migration completed before this process has taken its connection in: the reply on the QMP
  // socket and the connection on this one can come out of one poll in either order.
  let connected!: (received: Promise<void>) => void;
  const connection = new Promise<Promise<void>>((resolve) => (connected = resolve));
  const server = createServer((socket: Socket) => {
    server.close();
    const file = createWriteStream(statePath, { mode: 0o600 });
    connected(new Promise((resolve, reject) => {
      file.on('finish', resolve);
      file.on('error', reject);
      socket.on('error', reject);
    }));
    socket.pipe(file);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await qmp.execute('migrate-set-capabilities', IGNORE_SHARED);
    await qmp.execute('migrate', { uri: `unix:${socketPath}` });
    await migrationCompleted(qmp, 'the snapshot', 5);
    const neverConnected = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the snapshot failed: QEMU never connected')), timeoutMs);
    });
    await Promise.race([connection.then((received) => received), neverConnected]);
  } finally {
    clearTimeout(timer);
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
