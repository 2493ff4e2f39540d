// The pod cases of cri-pod-cases.ts with the microVM handler and VM members in the warm pool (`"pool": {"vms": 1}`,
// docs/warm-pool.md): each case starts once a member waits with its VM restored, so that its (first) pod runs in
// that VM; kubelet must see the same pods as with VMs booted for them, and nothing may be left after them. One case
// at a time, for the one member; all but the 10 pods at once (cri-pods-vm.test.ts runs that one), which would start
// ten TCG guests beside the other test files' for one pod that takes the member.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import avaTest from 'ava';
import { poolMembers } from '../src/host/warm-pool.js';
import { podTests, sharedCriEnv } from './helpers/cri-pod-cases.js';
import type { CriEnv } from './helpers/cri.js';

const templates = mkdtempSync(join(tmpdir(), 'runbox-cri-vm-pool-cases-'));
avaTest.after.always(() => rmSync(templates, { recursive: true, force: true }));
const shared = sharedCriEnv({ env: { RUNBOX_QEMU_TEMPLATE_DIR: templates, RUNBOX_QEMU_ACCEL: 'tcg' }, vmPool: { vms: 1 } });

let primed: Promise<CriEnv> | undefined;
/** The CRI environment once a VM member waits (the first pod's start has its refill start one). */
async function env(): Promise<CriEnv> {
  const cri = await (primed ??= shared().then(async (cri) => {
    const pod = await cri.runPod({ handler: 'runbox-vm' });
    await cri.client.runtime('StopPodSandbox', { podSandboxId: pod.id });
    await cri.client.runtime('RemovePodSandbox', { podSandboxId: pod.id });
    return cri;
  }));
  for (const end = Date.now() + 120_000; !poolMembers(process.env.RUNBOX_POOL_DIR).some((m) => m.kind === 'shimvm' && m.usable);) {
    if (Date.now() > end) throw new Error('no VM member joined the pool');
    await sleep(100);
  }
  return cri;
}

podTests('runbox-vm', env, { timeoutMs: 240_000, serial: true, only: /^(?!.*10 pods)/ });
