// A pod's microVM restored ahead of need (docs/warm-pool.md, "VM members"): a pooled shim of kind shimvm restores
// one from the pod template while it waits, so that the pod it is handed starts in a VM that is already running,
// its guest awake — no QEMU start, restore or wake on the pod's critical path. The VM waits in a directory of the
// pool's, its NIC's tap in a network namespace of its own (QEMU's, which goes with it) and its 9p export empty.
// A pod's sandbox that takes it moves all three to the pod: the directory and the export by rename (QEMU holds
// its sockets, files and export by open descriptors), the tap into the pod's network namespace (a tap keeps the
// descriptor QEMU holds when it changes namespace). One per process, taken at most once; QEMU dies with the
// process that restored it, and a process that ends without handing it on removes its directory.
import { copyFileSync, mkdirSync, openSync, readdirSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { basename, join } from 'node:path';
import { isProcessAlive, withParentDeath } from '../../host/host-process.js';
import type { Guest } from './guest-assets.js';
import type { Accel } from './qemu-accel.js';
import { qemuArgs, vmFiles } from './qemu-command.js';
import { AGENT_PORTS, removeVmFiles, startVm, type Deadline, type StartedVm } from './qemu-process.js';
import type { VmTemplate } from './qemu-template.js';
import { EXPORTS, volumesExport } from './pod-volumes.js';
import { createEmptyDisk, fillRootfsDisk, nextImageOffset, recordDiskEnd } from './rootfs-image.js';
import { QemuSandbox } from './qemu-sandbox.js';
import { cloneArgs, restoreClone, wakeClone } from './template-vm.js';

const RESERVE_DIR = /^vm\.(\d+)\.(\d+)$/;

export interface ReservedVm {
  vm: StartedVm;
  /** What the VM is (the template's key): a pod's sandbox takes it only when the VM it would start is the same. */
  template: VmTemplate;
}

let reserved: (ReservedVm & { dir: string }) | undefined;

/** Where a member's VM waits: in the pool's directory, named by the member's pid and start time. */
export function reserveDir(poolDir: string, pid: number, startTime: string): string {
  return join(poolDir, `vm.${pid}.${startTime}`);
}

/**
 * A waiting VM's 9p export: named as its directory is (its member's pid and start time), so that one whose member
 * died is found without its pool; nothing is ever bound in it. A pod that takes the VM renames it to its own.
 */
function reserveExport(dir: string): string {
  return join(EXPORTS, basename(dir));
}

function createReserveExport(dir: string): string {
  const path = reserveExport(dir);
  mkdirSync(path, { recursive: true, mode: 0o700 });
  return path;
}

function removeReserveDir(dir: string): void {
  rmSync(reserveExport(dir), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}

/** The entries of `dir` named as a waiting VM's directory whose member is dead. */
function deadReserves(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((name) => {
    const match = RESERVE_DIR.exec(name);
    return match && !isProcessAlive(Number(match[1]), match[2]!);
  });
}

/**
 * Removes what waiting VMs left whose member died without removing it (kill -9; QEMU died with it): their
 * directories in the pool at `poolDir`, and every such export, whichever pool it was of.
 */
export function sweepReserves(poolDir: string): void {
  for (const name of deadReserves(poolDir)) removeReserveDir(join(poolDir, name));
  for (const name of deadReserves(EXPORTS)) rmSync(join(EXPORTS, name), { recursive: true, force: true });
}

/** A static busybox (Debian's busybox-static): a waiting VM's warm-up container runs it. */
const WARM_UP_BUSYBOX = '/bin/busybox';

/**
 * Restores a pod VM from `template` in `dir` (made here, and removed again if anything fails), runs a warm-up
 * container in it (QemuSandbox.warmUp: its image, busybox alone, is the first in the VM's disk, the pod's go after
 * it), and keeps it for this process's first pod.
 */
export async function holdReserve(dir: string, guest: Guest, accel: Accel, template: VmTemplate, deadline: Deadline): Promise<void> {
  mkdirSync(dir, { mode: 0o700 });
  try {
    await startReserve(dir, guest, accel, template, deadline);
  } catch (error) {
    removeReserveDir(dir);
    throw error;
  }
}

async function warmUp(dir: string, vm: StartedVm): Promise<void> {
  const rootfs = join(dir, 'warm-up');
  mkdirSync(join(rootfs, 'bin'), { recursive: true, mode: 0o700 });
  copyFileSync(WARM_UP_BUSYBOX, join(rootfs, 'bin', 'busybox'));
  const size = await fillRootfsDisk(rootfs, vmFiles(dir).image);
  recordDiskEnd(dir, nextImageOffset(0, size));
  rmSync(rootfs, { recursive: true, force: true });
  await new QemuSandbox(vm.handle, vm.client, async () => {}, async () => {}).warmUp({ offset: 0, size }, ['/bin/busybox', 'sh', '-c', 'true']);
}

async function startReserve(dir: string, guest: Guest, accel: Accel, template: VmTemplate, deadline: Deadline): Promise<void> {
  const files = vmFiles(dir);
  createEmptyDisk(files.image);
  const vm = await startVm({
    dir,
    accel,
    deadline,
    inheritStdio: false,
    snapshotFd: openSync(template.state, 'r'),
    netns: 'private',
    args: () => qemuArgs({
      ...guest, dir, accel, agentPorts: AGENT_PORTS, stdio: {}, image: files.image, ...cloneArgs(template), nic: {},
      volumes: createReserveExport(dir),
    }),
    launcher: withParentDeath,
    spawned: (signal) => restoreClone(files.qmp, signal),
    ready: (client) => wakeClone(client, {}),
  });
  vm.child.unref();
  try {
    await warmUp(dir, vm);
  } catch (error) {
    vm.client.close();
    vm.child.kill('SIGKILL');
    await vm.exited;
    throw error;
  }
  const held = { vm, template, dir };
  reserved = held;
  // A VM that ends while it waits is dropped; one that outlives its process's end is ended with it.
  void vm.exited.then(() => {
    if (reserved !== held) return;
    reserved = undefined;
    removeReserveDir(dir);
  });
  process.once('exit', () => {
    if (reserved !== held) return;
    vm.child.kill('SIGKILL');
    removeReserveDir(dir);
  });
}

/** Ends this process's waiting VM, if it has one (a pod that did not take it). */
export function discardReserve(): void {
  const held = reserved;
  if (!held) return;
  reserved = undefined;
  held.vm.client.close();
  held.vm.child.kill('SIGKILL');
  void held.vm.exited.then(() => removeReserveDir(held.dir));
}

/**
 * This process's waiting VM, moved to `dir` (an empty directory, replaced) with its export, and reniced to this
 * process's priority (it was restored at a pool's); undefined when there is none or its template's key is not
 * `key()` (then it is ended: key is asked only when there is a VM, as it reads the guest's files). The caller moves
 * its tap (pod-network.ts) and owns it from then on.
 */
export function takeReserve(key: () => string, dir: string): ReservedVm | undefined {
  const held = reserved;
  if (!held) return undefined;
  if (held.template.key !== key()) {
    discardReserve();
    return undefined;
  }
  try {
    rmdirSync(dir);
    renameSync(held.dir, dir);
  } catch {
    discardReserve();
    return undefined;
  }
  reserved = undefined;
  try {
    renameSync(reserveExport(held.dir), volumesExport(dir));
  } catch {
    held.vm.client.close();
    held.vm.child.kill('SIGKILL');
    removeVmFiles({ dir, agentPorts: AGENT_PORTS });
    rmSync(reserveExport(held.dir), { recursive: true, force: true });
    return undefined;
  }
  reniceThreads(held.vm.handle.pid, getPriority());
  return { vm: { ...held.vm, handle: { ...held.vm.handle, dir } }, template: held.template };
}

/** Sets the priority of every thread of a process (setpriority(2) sets one thread's: QEMU's vCPUs are threads). */
function reniceThreads(pid: number, priority: number): void {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return; // gone: the sandbox finds out at its first request
  }
  for (const tid of threads) {
    try {
      setPriority(Number(tid), priority);
    } catch {
      // ended meanwhile
    }
  }
}
