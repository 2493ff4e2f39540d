// Kubernetes pods through containerd's own CRI plugin (test/helpers/cri.ts), runc's handler vs runbox's emulated
// driver vs runbox's microVMs in one run: RunPodSandbox to the first output of the pod's container, pods per
// minute for 20 pods started 2 at a time, and the host memory of a pod VM (QEMU and the shim, PSS). Returns a
// markdown section.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { shimSocketPath, shimStateDir } from '../src/shim/shim-socket.js';
import { pidsWith } from '../test/helpers/containerd.js';
import { CriEnv, type Handler, type Pod } from '../test/helpers/cri.js';
import { cleanupList } from '../test/helpers/teardown.js';
import { median } from './stats.js';
import { verdict } from './verdict.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PODS = 20;
const AT_ONCE = 2;
const MEMORY_PODS = 3;
const HANDLERS: Handler[] = ['runc', 'runbox', 'runbox-vm'];

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
    for (const handler of HANDLERS) {
      const times: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
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
    const vmPods = await Promise.all(Array.from({ length: MEMORY_PODS }, async () => (await podToFirstOutput(cri, 'runbox-vm')).pod));
    await sleep(2000);
    const memory = vmPods.map((pod) => {
      const stateDir = shimStateDir(shimSocketPath(cri.containerd.address, 'k8s.io', pod.id));
      const qemu = pidsWith('qemu-system-x86_64', stateDir);
      const shim = pidsWith('containerd-shim-runbox-v2', pod.id);
      return { qemu: qemu.reduce((sum, pid) => sum + pssMiB(pid), 0), shim: shim.reduce((sum, pid) => sum + pssMiB(pid), 0) };
    });
    await Promise.all(vmPods.map((pod) => removePod(cri, pod)));
    const qemuPss = median(memory.map((m) => m.qemu));
    const shimPss = median(memory.map((m) => m.shim));
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
      '',
      `Host memory per pod VM (median of ${MEMORY_PODS} pods running at once, one container each): QEMU ${qemuPss.toFixed(1)} MiB PSS + shim ${shimPss.toFixed(1)} MiB PSS = ${(qemuPss + shimPss).toFixed(1)} MiB (${verdict(qemuPss + shimPss, 100, ' MiB', '<')}).`,
      '',
    ].join('\n');
  } finally {
    await cleanups.run();
  }
}
