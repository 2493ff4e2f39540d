// Pods through containerd's CRI with the microVM handler and `"pool": {"vms": 1}` in its runtime options: a pod's
// sandbox is handed a pooled shim that holds a restored, warmed-up microVM (docs/warm-pool.md, "VM members"), and the
// pod runs in that VM. The tests run one at a time: they share the file's one VM member.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import avaTest from 'ava';
import { EXPORTS } from '../src/drivers/qemu/pod-volumes.js';
import { isProcessAlive, processesIn, processStartTime } from '../src/host/host-process.js';
import { poolMembers } from '../src/host/warm-pool.js';
import { sandboxDir, shimSocketPath, shimStateDir } from '../src/shim/shim-socket.js';
import { pidsWith } from './helpers/containerd.js';
import { nothingLeft, sharedCriEnv } from './helpers/cri-pod-cases.js';
import { CriEnv, type Pod } from './helpers/cri.js';
import { endPool } from './helpers/private-pool.js';
import { cleanupList } from './helpers/teardown.js';
import { guestAssets } from '../src/drivers/qemu/guest-assets.js';
import { RUNBOX, runCommand } from './helpers/runbox.js';

const QEMU = 'qemu-system-x86_64';
const templates = mkdtempSync(join(tmpdir(), 'runbox-cri-vm-pool-'));
avaTest.after.always(() => rmSync(templates, { recursive: true, force: true }));
const shared = sharedCriEnv({ env: { RUNBOX_QEMU_TEMPLATE_DIR: templates, RUNBOX_QEMU_ACCEL: 'tcg' }, vmPool: { vms: 1 } });
const poolDir = process.env.RUNBOX_POOL_DIR!;

/** The CRI environment, after one pod has come and gone: the first start's refill starts the VM member. */
let primed: Promise<CriEnv> | undefined;
function env(): Promise<CriEnv> {
  return (primed ??= (async () => {
    const cri = await shared();
    await removePod(cri, await cri.runPod({ handler: 'runbox-vm' }));
    return cri;
  })());
}

async function removePod(cri: CriEnv, pod: Pod): Promise<void> {
  await cri.client.runtime('StopPodSandbox', { podSandboxId: pod.id });
  await cri.client.runtime('RemovePodSandbox', { podSandboxId: pod.id });
}

interface VmMember {
  pid: number;
  /** The member's waiting VM: its QEMU, and the directory it waits in. */
  qemu: number;
  qemuStart: string;
  dir: string;
}

/** The idle shimvm member once its VM is restored and warmed up (it joins the pool only then). */
async function vmMember(pool = poolDir): Promise<VmMember> {
  for (const end = Date.now() + 120_000; Date.now() < end; await sleep(100)) {
    const member = poolMembers(pool).find((m) => m.kind === 'shimvm' && m.usable);
    if (!member) continue;
    const dir = join(pool, `vm.${member.pid}.${member.startTime}`);
    const [qemu] = pidsWith(QEMU, `${dir}/`);
    if (qemu === undefined) continue;
    return { pid: member.pid, qemu, qemuStart: processStartTime(qemu)!, dir };
  }
  throw new Error(`no VM member joined the pool ${pool}`);
}

/** A waiting VM's 9p export: named as its directory is (vm-reserve.ts). */
const memberExport = (member: VmMember) => join(EXPORTS, basename(member.dir));

const podVmDir = (cri: CriEnv, pod: Pod) => sandboxDir(shimStateDir(shimSocketPath(cri.containerd.address, 'k8s.io', pod.id)));

async function gone(pid: number, startTime: string, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; isProcessAlive(pid, startTime);) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}

avaTest.serial('runbox-vm with pool.vms: the pod runs in the VM its pooled shim restored while it waited, and the pool refills', async (t) => {
  t.timeout(300_000);
  const cri = await env();
  const member = await vmMember();
  const pod = await cri.runPod({ handler: 'runbox-vm' });
  t.teardown(() => removePod(cri, pod).catch(() => {}));
  t.deepEqual(pidsWith('containerd-shim-runbox-v2', pod.id), [member.pid], 'the VM member serves the pod');
  t.deepEqual(processesIn(QEMU, podVmDir(cri, pod)), [member.qemu], 'the pod\'s QEMU is the one that waited, in the pod\'s directory');
  t.false(existsSync(member.dir), 'the waiting VM\'s directory became the pod\'s');
  t.is(readFileSync(`/proc/${member.qemu}/stat`, 'utf8').split(' ')[18], '0', 'QEMU runs at the pod\'s priority, not the pool\'s');

  const data = mkdtempSync(join(tmpdir(), 'runbox-cri-vm-pool-data-'));
  t.teardown(() => rmSync(data, { recursive: true, force: true }));
  const server = await cri.startContainer(pod, {
    name: 'server', image: 'first', mounts: [{ containerPath: '/data', hostPath: data }],
    args: ['sh', '-c', 'mkdir -p /www && echo "served by $(cat /etc/image)" > /www/index.html && exec httpd -f -p 8080 -h /www'],
  });
  const client = await cri.startContainer(pod, { name: 'client', image: 'second', args: ['sleep', '100000'] });
  t.is((await cri.execSync(client, ['cat', '/etc/image'])).stdout, 'second\n');
  t.not((await cri.execSync(client, ['ls', '/only-in-first'])).exitCode, 0, 'each container sees its own image');
  // The tap moved into the pod's network namespace: the pod's IP answers from the host side.
  const ip = (await cri.podStatus(pod.id)).network.ip as string;
  for (const end = Date.now() + 30_000; (await cri.execSync(server, ['sh', '-c', 'netstat -ltn | grep -q :8080'])).exitCode !== 0 && Date.now() < end;) await sleep(100);
  const fetched = await cri.hostSide(process.execPath, ['-e', `fetch('http://${ip}:8080/').then(async (r) => process.stdout.write(await r.text()))`]);
  t.is(fetched.stdout, 'served by first\n', fetched.stderr);
  t.is((await cri.execSync(client, ['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/'])).stdout, 'served by first\n');
  // The 9p export moved with the VM: a hostPath volume is shared both ways.
  t.is((await cri.execSync(server, ['sh', '-c', 'echo from the container > /data/out'])).exitCode, 0);
  t.is(readFileSync(join(data, 'out'), 'utf8'), 'from the container\n');
  writeFileSync(join(data, 'in'), 'from the host\n');
  t.is((await cri.execSync(server, ['cat', '/data/in'])).stdout, 'from the host\n');

  const next = await vmMember();
  t.not(next.pid, member.pid, 'a new VM member took its place');
  await removePod(cri, pod);
  t.true(await gone(member.qemu, member.qemuStart), 'the pod\'s VM ends with the pod');
  await nothingLeft(t, cri, pod, [server, client]);
});

avaTest.serial('runbox-vm with pool.vms: kill -9 of an idle VM member ends its VM, the next member removes what it left, and pods run on', async (t) => {
  t.timeout(300_000);
  const cri = await env();
  const member = await vmMember();
  const exported = memberExport(member);
  t.true(existsSync(exported));
  process.kill(member.pid, 'SIGKILL');
  t.true(await gone(member.qemu, member.qemuStart), 'its QEMU died with it');
  // The next start finds no VM member: a shim of its own boots the pod's VM, and the refill starts a member.
  const pod = await cri.runPod({ handler: 'runbox-vm' });
  t.teardown(() => removePod(cri, pod).catch(() => {}));
  const id = await cri.startContainer(pod, { name: 'app', image: 'first', args: ['sleep', '100000'] });
  t.is((await cri.execSync(id, ['cat', '/etc/image'])).stdout, 'first\n');
  await vmMember();
  t.false(existsSync(member.dir), 'the dead member\'s VM directory is gone');
  t.false(existsSync(exported), 'and its 9p export');
  await removePod(cri, pod);
  await nothingLeft(t, cri, pod, [id]);
});

avaTest.serial('runbox-vm with pool.vms: a pod sized otherwise than the waiting VM gets a VM of its own, and the waiting one ends', async (t) => {
  t.timeout(300_000);
  const cri = await env();
  const member = await vmMember();
  const pod = await cri.runPod({ handler: 'runbox-vm', resources: { cpuPeriod: 100_000, cpuQuota: 100_000, memoryLimitInBytes: 256 * 2 ** 20 } });
  t.teardown(() => removePod(cri, pod).catch(() => {}));
  t.deepEqual(pidsWith('containerd-shim-runbox-v2', pod.id), [member.pid], 'the VM member serves the pod');
  t.true(await gone(member.qemu, member.qemuStart), 'the VM that waited is ended');
  t.false(existsSync(member.dir));
  const [qemu] = processesIn(QEMU, podVmDir(cri, pod));
  t.truthy(qemu);
  t.regex(readFileSync(`/proc/${qemu}/cmdline`, 'utf8'), /\x00-m\x00304M\x00/, 'the pod\'s own VM: 256 MiB and the guest kernel\'s 48');
  const id = await cri.startContainer(pod, { name: 'app', image: 'second', args: ['sleep', '100000'] });
  t.is((await cri.execSync(id, ['cat', '/etc/image'])).stdout, 'second\n');
  await removePod(cri, pod);
  await nothingLeft(t, cri, pod, [id]);
});

avaTest.serial('runbox-vm with pool.vms: `runbox pool --drain` ends the VM members and their VMs', async (t) => {
  t.timeout(300_000);
  await env();
  const member = await vmMember();
  const drained = await runCommand(RUNBOX, ['pool', '--drain', '--format', 'json'], { env: { ...process.env, RUNBOX_POOL_DIR: poolDir } });
  t.is(drained.code, 0, drained.stderr);
  t.false((JSON.parse(drained.stdout) as { members: Array<{ kind: string }> }).members.some((m) => m.kind === 'shimvm'));
  t.true(await gone(member.qemu, member.qemuStart));
  t.false(existsSync(member.dir));
  t.false(existsSync(memberExport(member)));
});

avaTest.serial('runbox-vm with pool.vms: a VM restored before the guest\'s files changed (an upgrade) is not given to a pod', async (t) => {
  t.timeout(300_000);
  // A containerd of its own, whose guest initramfs is a copy this test can change, with a pool of its own.
  const dir = mkdtempSync(join(tmpdir(), 'runbox-cri-vm-pool-upgrade-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const initrd = join(dir, 'initrd.img');
  copyFileSync(guestAssets().initrd, initrd);
  const pool = join(dir, 'pool');
  const cleanups = cleanupList();
  t.teardown(() => cleanups.run());
  const cri = await CriEnv.start(cleanups, {
    env: { RUNBOX_QEMU_TEMPLATE_DIR: join(dir, 'templates'), RUNBOX_QEMU_ACCEL: 'tcg', RUNBOX_QEMU_INITRD: initrd, RUNBOX_POOL_DIR: pool },
    vmPool: { vms: 1 },
  });
  t.teardown(() => endPool(pool));
  await removePod(cri, await cri.runPod({ handler: 'runbox-vm' }));
  const member = await vmMember(pool);
  const later = new Date(Date.now() + 5000);
  utimesSync(initrd, later, later);
  const pod = await cri.runPod({ handler: 'runbox-vm' });
  t.teardown(() => removePod(cri, pod).catch(() => {}));
  t.deepEqual(pidsWith('containerd-shim-runbox-v2', pod.id), [member.pid], 'the VM member serves the pod');
  t.true(await gone(member.qemu, member.qemuStart), 'its VM, restored from the old files, is ended');
  const [qemu] = processesIn(QEMU, podVmDir(cri, pod));
  t.truthy(qemu);
  t.not(qemu, member.qemu);
  const id = await cri.startContainer(pod, { name: 'app', image: 'first', args: ['sleep', '100000'] });
  t.is((await cri.execSync(id, ['cat', '/etc/image'])).stdout, 'first\n');
});
