// Pods through containerd's own CRI plugin with runbox's microVM handler (`runbox-vm`: the qemu driver through
// the runtime options' ConfigPath): one VM per pod, each container of the pod added to it with its own image.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import avaTest from 'ava';
import { guestAssets } from '../src/drivers/qemu/guest-assets.js';
import { GUEST_FILE_LIMIT } from '../src/drivers/qemu/pod-in-vm.js';
import { shimSocketPath, shimStateDir } from '../src/shim/shim-socket.js';
import { pidsWith } from './helpers/containerd.js';
import { nothingLeft, podTests, runningPair, sharedCriEnv } from './helpers/cri-pod-cases.js';

const templates = mkdtempSync(join(tmpdir(), 'runbox-cri-vm-'));
avaTest.after.always(() => rmSync(templates, { recursive: true, force: true }));
const env = sharedCriEnv({ env: { RUNBOX_QEMU_TEMPLATE_DIR: templates, RUNBOX_QEMU_ACCEL: 'tcg' } });
podTests('runbox-vm', env, { timeoutMs: 240_000 });

avaTest('runbox-vm: a pod is one microVM: all its containers run under the guest kernel, in one QEMU', async (t) => {
  t.timeout(240_000);
  const cri = await env();
  const pod = await cri.runPod({ handler: 'runbox-vm' });
  t.teardown(async () => {
    await cri.client.runtime('StopPodSandbox', { podSandboxId: pod.id });
    await cri.client.runtime('RemovePodSandbox', { podSandboxId: pod.id });
  });
  const ids = [
    await cri.startContainer(pod, { name: 'first', image: 'first', args: ['sleep', '100000'] }),
    await cri.startContainer(pod, { name: 'second', image: 'second', args: ['sleep', '100000'] }),
  ];
  t.not(guestAssets().kernelVersion, release());
  for (const id of ids) t.is((await cri.execSync(id, ['uname', '-r'])).stdout, `${guestAssets().kernelVersion}\n`);
  const vmDir = shimStateDir(shimSocketPath(cri.containerd.address, 'k8s.io', pod.id));
  t.is(pidsWith('qemu-system-x86_64', vmDir).length, 1, 'one QEMU serves the pod');
});

avaTest('runbox-vm: a mount the VM cannot give fails CreateContainer naming it, and the pod runs on', async (t) => {
  t.timeout(240_000);
  const cri = await env();
  const dir = mkdtempSync(join(tmpdir(), 'runbox-cri-vm-mount-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const large = join(dir, 'large');
  writeFileSync(large, Buffer.alloc(GUEST_FILE_LIMIT + 1));
  const pod = await cri.runPod({ handler: 'runbox-vm' });
  t.teardown(async () => {
    await cri.client.runtime('StopPodSandbox', { podSandboxId: pod.id });
    await cri.client.runtime('RemovePodSandbox', { podSandboxId: pod.id });
  });
  const refused = await t.throwsAsync(cri.startContainer(pod, {
    name: 'refused', image: 'first', args: ['true'], mounts: [{ containerPath: '/large', hostPath: large }],
  }));
  t.regex(refused.message, new RegExp(`the host file ${large} for /large is larger than`));
  const id = await cri.startContainer(pod, { name: 'app', image: 'second', args: ['sleep', '100000'] });
  t.is((await cri.execSync(id, ['cat', '/etc/image'])).stdout, 'second\n');
});

avaTest('runbox-vm: the VM is sized from the pod (its containers\' limits), and each container has its own limit in the guest', async (t) => {
  t.timeout(240_000);
  const cri = await env();
  const pod = await cri.runPod({ handler: 'runbox-vm', resources: { cpuPeriod: 100_000, cpuQuota: 200_000, memoryLimitInBytes: 320 * 2 ** 20 } });
  t.teardown(async () => {
    await cri.client.runtime('StopPodSandbox', { podSandboxId: pod.id });
    await cri.client.runtime('RemovePodSandbox', { podSandboxId: pod.id });
  });
  const id = await cri.startContainer(pod, { name: 'app', image: 'first', args: ['sleep', '100000'], resources: { memoryLimitInBytes: 64 * 2 ** 20 } });
  const memTotalKib = Number(/^MemTotal:\s+(\d+) kB$/m.exec((await cri.execSync(id, ['cat', '/proc/meminfo'])).stdout)?.[1]);
  // 320 MiB for the pod and 48 for the guest kernel, less what the kernel keeps before MemTotal counts.
  t.true(memTotalKib > 320 * 1024 && memTotalKib <= 368 * 1024, `MemTotal ${memTotalKib} kB`);
  t.is((await cri.execSync(id, ['nproc'])).stdout, `${Math.min(2, availableParallelism())}\n`);
  const limit = await cri.execSync(id, ['sh', '-c', 'p=$(sed -n "s/^[0-9]*:memory://p" /proc/self/cgroup); cat /sys/fs/cgroup/memory$p/memory.limit_in_bytes']);
  t.is(limit.stdout, `${64 * 2 ** 20}\n`, limit.stderr);
});

avaTest('runbox-vm: a pod whose VM dies: CRI sees its containers exited and the sandbox not ready, and RemovePodSandbox leaves nothing', async (t) => {
  t.timeout(240_000);
  const cri = await env();
  const { pod, ids } = await runningPair(cri, 'runbox-vm');
  const vmDir = shimStateDir(shimSocketPath(cri.containerd.address, 'k8s.io', pod.id));
  const [qemu] = pidsWith('qemu-system-x86_64', vmDir);
  t.truthy(qemu);
  process.kill(qemu!, 'SIGKILL');
  // containerd learns of the exits from the shim, and CRI from containerd's events: slow on a loaded machine.
  const states = async () => Promise.all(ids.map((id) => cri.containerState(id)));
  for (let i = 0; i < 1200 && (await states()).some((state) => state !== 'CONTAINER_EXITED'); i++) await sleep(100);
  t.deepEqual(await states(), ['CONTAINER_EXITED', 'CONTAINER_EXITED']);
  for (let i = 0; i < 1200 && (await cri.podStatus(pod.id)).state !== 'SANDBOX_NOTREADY'; i++) await sleep(100);
  t.is((await cri.podStatus(pod.id)).state, 'SANDBOX_NOTREADY');
  await cri.client.runtime('StopPodSandbox', { podSandboxId: pod.id });
  await cri.client.runtime('RemovePodSandbox', { podSandboxId: pod.id });
  await nothingLeft(t, cri, pod, ids);
});

avaTest('runbox-vm: a container removed from a running pod gives its rootfs back in the guest (its loop device is released)', async (t) => {
  t.timeout(240_000);
  const cri = await env();
  const { pod, ids: [first, second] } = await runningPair(cri, 'runbox-vm');
  t.teardown(async () => {
    await cri.client.runtime('StopPodSandbox', { podSandboxId: pod.id });
    await cri.client.runtime('RemovePodSandbox', { podSandboxId: pod.id });
  });
  // Each container after the sandbox has its image on a loop device; a released one has size 0.
  const attached = async () => Number((await cri.execSync(second!, ['sh', '-c', 'grep -v "^0$" /sys/block/loop*/size | wc -l'])).stdout);
  t.is(await attached(), 2);
  await cri.client.runtime('StopContainer', { containerId: first, timeout: 2 });
  await cri.client.runtime('RemoveContainer', { containerId: first });
  t.is(await attached(), 1);
});
