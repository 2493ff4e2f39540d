// Pods through containerd's own CRI plugin with runbox's microVM handler (`runbox-vm`: the qemu driver through
// the runtime options' ConfigPath): one VM per pod, each container of the pod added to it with its own image.
import { mkdtempSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import avaTest from 'ava';
import { guestAssets } from '../src/drivers/qemu/guest-assets.js';
import { shimSocketPath, shimStateDir } from '../src/shim/shim-socket.js';
import { pidsWith } from './helpers/containerd.js';
import { podTests, sharedCriEnv } from './helpers/cri-pod-cases.js';

const templates = mkdtempSync(join(tmpdir(), 'runbox-cri-vm-'));
avaTest.after.always(() => rmSync(templates, { recursive: true, force: true }));
const env = sharedCriEnv({ env: { RUNBOX_QEMU_TEMPLATE_DIR: templates, RUNBOX_QEMU_ACCEL: 'tcg' } });
podTests('runbox-vm', env, {
  timeoutMs: 240_000,
  only: /two containers|streaming Exec|stopped and removed|IP is reachable|NamespaceOption|10 pods|nothing is left|kill -9/,
});

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
