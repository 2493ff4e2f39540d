// VM templates' two ends: a template VM booted until its agent greets and snapshotted (RAM in a file of its own),
// and a clone restored from that snapshot, then told the host's time and given fresh entropy before anything else.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CloneFailureError, SandboxError } from '../../errors/errors.js';
import type { AgentClient } from '../../agent-client/agent-client.js';
import { untilListening } from '../../host/until-listening.js';
import type { Guest } from './guest-assets.js';
import type { Accel } from './qemu-accel.js';
import { qemuArgs, vmFiles, type InheritedStdio } from './qemu-command.js';
import { AGENT_PORTS, removeVmFiles, SNAPSHOT_FD, startVm, type Deadline } from './qemu-process.js';
import { QmpClient } from './qemu-qmp.js';
import { restoreSnapshot, saveSnapshot, stopWhenQuiet } from './qemu-snapshot.js';
import { TEMPLATE_ANNOTATION, type VmTemplate } from './qemu-template.js';
import { createEmptyDisk } from './rootfs-image.js';

/** What a clone's kernel is reseeded with: as much as its CRNG's key, twice. */
const CLONE_ENTROPY_BYTES = 64;

/** A template's 9p export: an empty directory of its own, in which nothing is ever mounted. */
function templateExport(dir: string): string {
  const path = join(dir, 'volumes');
  mkdirSync(path, { mode: 0o700, recursive: true });
  return path;
}

/** Boots a template VM in `dir` with its RAM in `dir/ram`, snapshots it once its agent has greeted, ends it. */
export async function buildTemplate(dir: string, guest: Guest, accel: Accel, deadline: Deadline): Promise<void> {
  const files = vmFiles(dir);
  createEmptyDisk(files.image);
  const vm = await startVm({
    dir,
    accel,
    deadline,
    inheritStdio: false,
    // A NIC's tap in a network namespace of its own, which goes with the template's QEMU, and an empty export
    // (a clone's is its own: a 9p device not yet mounted restores onto another path).
    ...(guest.pod && { netns: 'private' }),
    args: () => qemuArgs({
      ...guest, dir, accel, agentPorts: AGENT_PORTS, stdio: {}, image: files.image, everyStdioPort: true,
      memory: { path: join(dir, 'ram'), shared: true }, ...(guest.pod && { nic: {}, volumes: templateExport(dir) }),
    }),
  });
  vm.client.close();
  let qmp: QmpClient | undefined;
  try {
    qmp = await QmpClient.connect(files.qmp);
    await stopWhenQuiet(qmp, 'agent');
    await saveSnapshot(qmp, join(dir, 'state'));
    await qmp.execute('quit').catch(() => {}); // QEMU may close before it answers
  } catch (error) {
    throw new SandboxError(
      `cannot snapshot the template microVM (accel ${accel}): ${(error as Error).message} (${TEMPLATE_ANNOTATION}=off boots without one)`,
    );
  } finally {
    qmp?.close();
    if (!(await Promise.race([vm.exited.then(() => true), sleep(3000).then(() => false)]))) {
      vm.child.kill('SIGKILL');
      await vm.exited;
    }
    removeVmFiles(vm.handle);
  }
}

/**
 * What a clone's QEMU command line has besides its own files (qemuArgs): its template's devices, every stdio port
 * among them, nothing booted (the snapshot comes over QMP) and the template's RAM mapped copy-on-write.
 */
export function cloneArgs(template: VmTemplate): { everyStdioPort: true; incoming: true; memory: { path: string; shared: false } } {
  return { everyStdioPort: true, incoming: true, memory: { path: template.ram, shared: false } };
}

/** Restores the template's snapshot (QEMU inherited it as SNAPSHOT_FD) into a clone that has just started. */
export async function restoreClone(qmpPath: string, signal: AbortSignal): Promise<void> {
  let qmp: QmpClient | undefined;
  try {
    qmp = await untilListening(() => QmpClient.connect(qmpPath), signal);
    await restoreSnapshot(qmp, SNAPSHOT_FD);
  } catch (error) {
    if (signal.aborted) return;
    throw new CloneFailureError(`cannot restore the template's snapshot: ${(error as Error).message}`);
  } finally {
    qmp?.close();
  }
}

/** What a clone takes from its host before anything else: the time, fresh entropy, which stdio it lacks. */
export async function wakeClone(client: AgentClient, stdio: InheritedStdio): Promise<void> {
  const absent = (['stdin', 'stdout', 'stderr'] as const).filter((name) => !stdio[name]);
  try {
    await client.request([
      ['op', 'vm_restored'],
      ['realtime_ns', String(BigInt(Date.now()) * 1_000_000n)],
      ['entropy', randomBytes(CLONE_ENTROPY_BYTES).toString('hex')],
      ...absent.map((name): [string, string] => ['stdio_absent', name]),
    ]);
  } catch (error) {
    throw new CloneFailureError(`the restored guest refused the host's time and entropy: ${(error as Error).message}`);
  }
}
