// Kubernetes pods through containerd's own CRI plugin (test/helpers/cri.ts), runc's handler vs runbox's emulated
// driver vs runbox's microVMs in one run: RunPodSandbox to the first output of the pod's container, pods per
// minute for 20 pods started 2 at a time, and the host memory of a pod VM (QEMU and the shim, PSS); and the same for
// microVMs taken from the warm pool's VM members (docs/warm-pool.md). Returns a
// markdown section.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sandboxDir, shimSocketPath, shimStateDir } from '../src/shim/shim-socket.js';
import { processesIn } from '../src/host/host-process.js';
import { pidsWith } from '../test/helpers/containerd.js';
import { CriEnv, VM_POOL_MEMBERS, type Handler, type Pod } from '../test/helpers/cri.js';
import { poolMembers } from '../src/host/warm-pool.js';
import { POOL_VM_REFILL_DELAY_MS } from '../src/generated/facts.js';
import { cleanupList } from '../test/helpers/teardown.js';
import { median } from './stats.js';
import { verdict } from './verdict.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PODS = 20;
const AT_ONCE = 2;
const MEMORY_PODS = 3;
const HANDLERS: Handler[] = ['runc', 'runbox', 'runbox-vm', 'runbox-vm-pool'];

/** A pod whose one container prints a line and stays: the ms from RunPodSandbox to that line in its log. */
async function podToFirstOutput(cri: CriEnv, handler: Handler): Promise<{ pod: Pod; ms: number }> {
  const started = process.hrtime.bigint();
  const pod = await cri.runPod({ handler });
  await cri.startContainer(pod, { name: 'app', image: 'first', args: ['sh', '-c', 'echo ready; exec sleep 100000'] });
  const log = join(pod.logDirectory, 'app.log');
  for (;;) {
    let text = '';
    try {
      text = readFileSync(log, 'utf8');
    } catch {
      // not yet
    }
    if (text.includes(' ready\n')) break;
    await sleep(5);
  }
  return { pod, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

async function removePod(cri: CriEnv, pod: Pod): Promise<void> {
  await cri.client.runtime('StopPodSandbox', { podSandboxId: pod.id });
  await cri.client.runtime('RemovePodSandbox', { podSandboxId: pod.id });
}

/**
 * Until the warm pool holds `count` idle VM members (pooled shims, each with its restored VM). A refill starts only
 * after a start takes from the pool, and one under way is enough for the starts that come meanwhile: after a burst
 * the pool may stay short until the next start, so a throwaway pooled pod is started when it does not fill.
 */
async function vmMembersIdle(cri: CriEnv, count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 5; attempt++) {
    for (const end = Date.now() + 30_000; Date.now() < end; await sleep(100)) {
      const members = poolMembers().filter((member) => member.kind === 'shimvm' && member.usable);
      if (members.length >= count) return members.map((member) => member.pid);
    }
    await removePod(cri, await cri.runPod({ handler: 'runbox-vm-pool' }));
  }
  throw new Error(`the warm pool did not refill to ${count} VM members`);
}

/** The proportional set size of a process in MiB (its share of pages it shares, such as a template's memory). */
function pssMiB(pid: number): number {
  const match = /^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

export async function podsBench(work: string): Promise<string> {
  const cleanups = cleanupList();
  try {
    const cri = await CriEnv.start(cleanups, {
      env: { RUNBOX_QEMU_TEMPLATE_DIR: join(work, 'pod-templates'), RUNBOX_QEMU_ACCEL: process.env.RUNBOX_QEMU_ACCEL ?? 'auto' },
    });
    const firstOutput = new Map<Handler, number>();
    const perMinute = new Map<Handler, number>();
    for (const handler of HANDLERS) {
      // One unmeasured pod first: a VM template is built by the first VM pod on a host.
      await removePod(cri, (await podToFirstOutput(cri, handler)).pod);
    }
    // The pooled pod's refill restores VMs: nothing is measured beside it.
    await vmMembersIdle(cri, VM_POOL_MEMBERS);
    for (const handler of HANDLERS) {
      const times: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        // A pool that has refilled since the last pod (a pod every few seconds): its VM members wait, warmed up.
        if (handler === 'runbox-vm-pool') await vmMembersIdle(cri, VM_POOL_MEMBERS);
        const { pod, ms } = await podToFirstOutput(cri, handler);
        times.push(ms);
        await removePod(cri, pod);
      }
      firstOutput.set(handler, median(times));
      const pods: Pod[] = [];
      const started = process.hrtime.bigint();
      for (let i = 0; i < PODS; i += AT_ONCE) {
        pods.push(...(await Promise.all(Array.from({ length: AT_ONCE }, async () => (await podToFirstOutput(cri, handler)).pod))));
      }
      perMinute.set(handler, PODS / (Number(process.hrtime.bigint() - started) / 1e9 / 60));
      await Promise.all(pods.map((pod) => removePod(cri, pod)));
    }
    const podMemory = async (handler: Handler) => {
      if (handler === 'runbox-vm-pool') await vmMembersIdle(cri, VM_POOL_MEMBERS);
      const pods = await Promise.all(Array.from({ length: MEMORY_PODS }, async () => (await podToFirstOutput(cri, handler)).pod));
      await sleep(2000);
      const memory = pods.map((pod) => {
        // QEMU runs in the pod's VM directory, also one restored ahead of need in another (vm-reserve.ts).
        const qemu = processesIn('qemu-system-x86_64', sandboxDir(shimStateDir(shimSocketPath(cri.containerd.address, 'k8s.io', pod.id))));
        const shim = pidsWith('containerd-shim-runbox-v2', pod.id);
        return { qemu: qemu.reduce((sum, pid) => sum + pssMiB(pid), 0), shim: shim.reduce((sum, pid) => sum + pssMiB(pid), 0) };
      });
      await Promise.all(pods.map((pod) => removePod(cri, pod)));
      return { qemu: median(memory.map((m) => m.qemu)), shim: median(memory.map((m) => m.shim)) };
    };
    const vmMemory = await podMemory('runbox-vm');
    const pooledMemory = await podMemory('runbox-vm-pool');
    // An idle VM member: the pooled shim and the QEMU of its waiting VM.
    const idle = (await vmMembersIdle(cri, VM_POOL_MEMBERS)).map((pid) => ({
      shim: pssMiB(pid), qemu: pidsWith('qemu-system-x86_64', `/vm.${pid}.`).reduce((sum, qemu) => sum + pssMiB(qemu), 0),
    }));
    const idleShim = median(idle.map((m) => m.shim));
    const idleQemu = median(idle.map((m) => m.qemu));
    const memoryLine = (what: string, { qemu, shim }: { qemu: number; shim: number }) =>
      `${what}: QEMU ${qemu.toFixed(1)} MiB PSS + shim ${shim.toFixed(1)} MiB PSS = ${(qemu + shim).toFixed(1)} MiB (${verdict(qemu + shim, 100, ' MiB', '<')}).`;
    const runc = firstOutput.get('runc')!;
    const row = (handler: Handler, name: string, target = '') =>
      `| ${name} | ${firstOutput.get(handler)!.toFixed(0)} ms | ${(firstOutput.get(handler)! / runc).toFixed(2)}× | ${perMinute.get(handler)!.toFixed(0)} | ${target} |`;
    return [
      `RunPodSandbox → the first line of the pod's container in its CRI log: median of ${ROUNDS}; pods per minute: ${PODS} pods (each to its first output) started ${AT_ONCE} at a time. The microVMs under ${process.env.RUNBOX_QEMU_ACCEL ?? 'auto'} acceleration, restored from a template.`,
      '',
      '| handler | RunPodSandbox → first output | vs runc | pods/min | target |',
      '| --- | ---: | ---: | ---: | --- |',
      row('runc', 'runc'),
      row('runbox', 'runbox, emulated driver'),
      row('runbox-vm', 'runbox, microVM', verdict(firstOutput.get('runbox-vm')! / runc, 2, '× runc\'s first output')),
      row('runbox-vm-pool', `runbox, microVM from the warm pool (${VM_POOL_MEMBERS} VM members)`, verdict(firstOutput.get('runbox-vm-pool')! / runc, 2, '× runc\'s first output')),
      '',
      `The warm pool's row: each measured pod starts once the pool holds ${VM_POOL_MEMBERS} idle VM members (pooled shims, each holding a restored, warmed-up VM: docs/warm-pool.md), as after a pause between pods; its pods/min starts pods as fast as they come, so the refill (a restore and warm-up at nice 19, ${POOL_VM_REFILL_DELAY_MS} ms after a take) competes with them and most find the pool empty.`,
      '',
      memoryLine(`Host memory per pod VM (median of ${MEMORY_PODS} pods running at once, one container each)`, vmMemory),
      memoryLine('The same for pods whose VM came from the warm pool', pooledMemory),
      `An idle VM member holds ${(idleShim + idleQemu).toFixed(1)} MiB PSS (shim ${idleShim.toFixed(1)} + QEMU ${idleQemu.toFixed(1)}; median of ${VM_POOL_MEMBERS}).`,
      '',
    ].join('\n');
  } finally {
    await cleanups.run();
  }
}
