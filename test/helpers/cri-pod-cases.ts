// The pod tests through containerd's CRI, written once and run per handler (runc as the reference, runbox's
// emulated driver, runbox's microVMs): what kubelet would see of a pod, and what a pod leaves on the host.
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import avaTest, { type ExecutionContext } from 'ava';
import { volumesExport } from '../../src/drivers/qemu/pod-volumes.js';
import { sandboxDir, shimSocketPath, shimStateDir } from '../../src/shim/shim-socket.js';
import { pidsWith } from './containerd.js';
import { CriEnv, POD_MARKER, type CriOptions, type Handler, type Pod } from './cri.js';
import { procFile } from './qemu.js';
import { processesWithEnvironment } from './runbox.js';
import { cleanupList } from './teardown.js';

/** A container that says it started and stays. */
const STAYS = (name: string) => ['sh', '-c', `echo started-${name}; exec sleep 100000`];

/** One CRI environment for a test file, its pods independent of each other; undone after the file's tests. */
export function sharedCriEnv(options: CriOptions = {}): () => Promise<CriEnv> {
  const cleanups = cleanupList();
  let env: Promise<CriEnv> | undefined;
  avaTest.after.always(() => cleanups.run());
  return () => (env ??= CriEnv.start(cleanups, options));
}

/** What a pod (and its containers) could leave on the host: processes, mounts, shim sockets and directories, links. */
export function podLeftovers(cri: CriEnv, pod: Pod, containerIds: string[]): string[] {
  const ids = [pod.id, ...containerIds];
  const left: string[] = [];
  const socket = shimSocketPath(cri.containerd.address, 'k8s.io', pod.id);
  const stateDir = shimStateDir(socket);
  const described = (pid: number) => `process ${pid} (${procFile(pid, 'cmdline').replaceAll('\0', ' ').trim()})`;
  for (const needle of [...ids, stateDir]) for (const pid of pidsWith(needle)) left.push(described(pid));
  // A VM restored ahead of need names the directory it waited in (docs/warm-pool.md): it runs in the pod's.
  for (const pid of processesRunningIn(sandboxDir(stateDir))) left.push(described(pid));
  for (const pid of processesWithEnvironment(`${POD_MARKER}=${pod.config.metadata.uid}`)) left.push(described(pid));
  for (const path of [socket, stateDir, volumesExport(sandboxDir(stateDir))]) if (existsSync(path)) left.push(`shim file ${path}`);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const point = line.split(' ')[4] ?? '';
    if (ids.some((id) => point.includes(id))) left.push(`mount ${point}`);
  }
  for (const id of ids) {
    const bundle = join(cri.containerd.dir, 'state', 'io.containerd.runtime.v2.task', 'k8s.io', id);
    if (existsSync(bundle)) left.push(`bundle ${bundle}`);
  }
  const netns = cri.podNetns(pod);
  if (netns && existsSync(netns)) left.push(`network namespace ${netns}`);
  for (const address of cri.addressesHeld(pod.id)) left.push(`pod address ${address}`);
  return left;
}

/** Processes whose working directory is `dir`, or was before it was removed. */
function processesRunningIn(dir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      if (cwd === dir || cwd === `${dir} (deleted)`) found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  for (const end = Date.now() + ms; !(await condition());) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function removePod(cri: CriEnv, pod: Pod): Promise<void> {
  await cri.client.runtime('StopPodSandbox', { podSandboxId: pod.id });
  await cri.client.runtime('RemovePodSandbox', { podSandboxId: pod.id });
}

/** A pod whose two containers, from the two images, have both started. */
export async function runningPair(cri: CriEnv, handler: Handler): Promise<{ pod: Pod; ids: string[] }> {
  const pod = await cri.runPod({ handler });
  const ids = [
    await cri.startContainer(pod, { name: 'first', image: 'first', args: STAYS('first') }),
    await cri.startContainer(pod, { name: 'second', image: 'second', args: STAYS('second') }),
  ];
  await cri.log(pod, 'second', /started/);
  return { pod, ids };
}

/** Fails the test with whatever the pod still has on the host once its removal has had a while to finish. */
export async function nothingLeft(t: ExecutionContext, cri: CriEnv, pod: Pod, ids: string[]): Promise<void> {
  await until(() => podLeftovers(cri, pod, ids).length === 0, 'the pod to leave nothing', 30_000).catch(() => {});
  t.deepEqual(podLeftovers(cri, pod, ids), [], cri.containerd.complaints([pod.id, ...ids]));
}

/** The shims serving the pod: one process per pod, started with the sandbox's id. */
function podShims(pod: Pod): number[] {
  return pidsWith('containerd-shim-runbox-v2', pod.id);
}

export function podTests(handler: Handler, env: () => Promise<CriEnv>, options: { timeoutMs?: number; only?: RegExp } = {}): void {
  const timeout = (t: ExecutionContext, factor = 1) => t.timeout((options.timeoutMs ?? 120_000) * factor);
  const test = (title: string, body: (t: ExecutionContext) => Promise<void>) => {
    if (!options.only || options.only.test(title)) avaTest(title, body);
  };

  test(`${handler}: a pod of two containers from different images, each with its own image's files, ExecSync and CRI's logs`, async (t) => {
    timeout(t);
    const cri = await env();
    const { pod, ids: [first, second] } = await runningPair(cri, handler);
    t.teardown(() => removePod(cri, pod));
    t.is((await cri.execSync(first, ['cat', '/etc/image'])).stdout, 'first\n');
    t.is((await cri.execSync(second, ['cat', '/etc/image'])).stdout, 'second\n');
    t.deepEqual(await cri.execSync(first, ['ls', '/only-in-first']), { stdout: '/only-in-first\n', stderr: '', exitCode: 0 });
    const absent = await cri.execSync(first, ['ls', '/only-in-second']);
    t.not(absent.exitCode, 0);
    t.regex(absent.stderr, /only-in-second/);
    t.not((await cri.execSync(second, ['ls', '/only-in-first'])).exitCode, 0);
    t.is((await cri.execSync(second, ['sh', '-c', 'echo out; echo err >&2; exit 7'])).exitCode, 7);
    t.regex(await cri.log(pod, 'first', /started-first/), /^\S+ stdout F started-first$/m);
    t.regex(await cri.log(pod, 'second', /started-second/), /^\S+ stdout F started-second$/m);
    t.is(await cri.containerState(first), 'CONTAINER_RUNNING');
    t.is((await cri.podStatus(pod.id)).state, 'SANDBOX_READY');
  });

  test(`${handler}: streaming Exec with stdin, stdout, stderr and the exit code`, async (t) => {
    timeout(t);
    const cri = await env();
    const pod = await cri.runPod({ handler });
    t.teardown(() => removePod(cri, pod));
    const id = await cri.startContainer(pod, { name: 'app', image: 'first', args: STAYS('app') });
    const result = await cri.streamExec(id, ['sh', '-c', 'read line; echo "got $line"; cat /etc/image; echo oops >&2; exit 3'], 'hello\n');
    t.is(result.stdout, 'got hello\nfirst\n');
    t.is(result.stderr, 'oops\n');
    t.is(result.status.status, 'Failure');
    t.deepEqual(result.status.details?.causes?.find((cause) => cause.reason === 'ExitCode')?.message, '3');
    t.is((await cri.streamExec(id, ['true'])).status.status, 'Success');
  });

  test(`${handler}: one container stopped and removed while the other runs on`, async (t) => {
    timeout(t);
    const cri = await env();
    const { pod, ids: [first, second] } = await runningPair(cri, handler);
    t.teardown(() => removePod(cri, pod));
    await cri.client.runtime('StopContainer', { containerId: first, timeout: 2 });
    t.is(await cri.containerState(first), 'CONTAINER_EXITED');
    await cri.client.runtime('RemoveContainer', { containerId: first });
    await t.throwsAsync(cri.containerState(first), { message: /not found|does not exist/i });
    t.is(await cri.containerState(second), 'CONTAINER_RUNNING');
    t.is((await cri.execSync(second, ['cat', '/etc/image'])).stdout, 'second\n');
    // A container created after that one's end joins the same pod.
    const third = await cri.startContainer(pod, { name: 'third', image: 'first', args: STAYS('third') });
    t.is((await cri.execSync(third, ['cat', '/etc/image'])).stdout, 'first\n');
    t.is((await cri.podStatus(pod.id)).state, 'SANDBOX_READY');
  });

  test(`${handler}: the pod's IP is reachable from the host side, and its containers reach each other on localhost`, async (t) => {
    timeout(t);
    const cri = await env();
    const pod = await cri.runPod({ handler });
    t.teardown(() => removePod(cri, pod));
    const server = await cri.startContainer(pod, {
      name: 'server', image: 'first',
      args: ['sh', '-c', 'mkdir -p /www && echo "served by $(cat /etc/image)" > /www/index.html && exec httpd -f -p 8080 -h /www'],
    });
    const client = await cri.startContainer(pod, { name: 'client', image: 'second', args: STAYS('client') });
    const ip = (await cri.podStatus(pod.id)).network.ip as string;
    t.regex(ip, /^10\.88\.\d+\.\d+$/);
    await until(async () => (await cri.execSync(server, ['sh', '-c', 'netstat -ltn | grep -q :8080'])).exitCode === 0, 'httpd to listen');
    const fetched = await cri.hostSide(process.execPath, ['-e', `fetch('http://${ip}:8080/').then(async (r) => process.stdout.write(await r.text()))`]);
    t.is(fetched.stdout, 'served by first\n', fetched.stderr);
    const local = await cri.execSync(client, ['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/']);
    t.is(local.stdout, 'served by first\n', local.stderr);
    const addresses = await cri.execSync(client, ['ip', '-o', '-4', 'addr', 'show']);
    t.true(addresses.stdout.includes(` ${ip}/`), addresses.stdout);
    t.regex((await cri.execSync(client, ['ip', 'route'])).stdout, /^default via 10\.88\.0\.1 /m);
    t.regex((await cri.execSync(client, ['cat', '/etc/resolv.conf'])).stdout, /^nameserver 10\.88\.0\.53$/m);
    t.is((await cri.execSync(client, ['hostname'])).stdout, `${pod.name}\n`);
    t.regex((await cri.execSync(client, ['cat', '/etc/hosts'])).stdout, /localhost/);
  });

  test(`${handler}: a hostPath volume written from both sides, and a read-only one`, async (t) => {
    timeout(t);
    const cri = await env();
    const shared = mkdtempSync(join(tmpdir(), 'runbox-cri-volume-'));
    const readonly = mkdtempSync(join(tmpdir(), 'runbox-cri-volume-ro-'));
    t.teardown(() => {
      rmSync(shared, { recursive: true, force: true });
      rmSync(readonly, { recursive: true, force: true });
    });
    writeFileSync(join(readonly, 'config'), 'from the host\n');
    const pod = await cri.runPod({ handler });
    t.teardown(() => removePod(cri, pod));
    const id = await cri.startContainer(pod, {
      name: 'app', image: 'first', args: STAYS('app'),
      mounts: [{ containerPath: '/data', hostPath: shared }, { containerPath: '/config', hostPath: readonly, readonly: true }],
    });
    t.is((await cri.execSync(id, ['sh', '-c', 'echo from the container > /data/out'])).exitCode, 0);
    t.is(readFileSync(join(shared, 'out'), 'utf8'), 'from the container\n');
    writeFileSync(join(shared, 'in'), 'from the host\n');
    t.is((await cri.execSync(id, ['cat', '/data/in'])).stdout, 'from the host\n');
    t.is((await cri.execSync(id, ['cat', '/config/config'])).stdout, 'from the host\n');
    const refused = await cri.execSync(id, ['sh', '-c', 'echo x > /config/new']);
    t.not(refused.exitCode, 0);
    t.regex(refused.stderr, /read-only/i);
    t.false(existsSync(join(readonly, 'new')));
  });

  test(`${handler}: NamespaceOption: a pod's pid namespace shared or per container, ipc and uts shared, the pod's hostname`, async (t) => {
    timeout(t);
    const cri = await env();
    const shared = await cri.runPod({ handler, namespaces: { pid: 'POD' }, hostname: 'shared-pid' });
    t.teardown(() => removePod(cri, shared));
    const own = await cri.runPod({ handler, namespaces: { pid: 'CONTAINER' } });
    t.teardown(() => removePod(cri, own));
    for (const pod of [shared, own]) {
      await cri.startContainer(pod, { name: 'sleeper', image: 'first', args: ['sleep', '100001'] });
    }
    const looker = await cri.startContainer(shared, { name: 'looker', image: 'second', args: STAYS('looker') });
    const ps = (await cri.execSync(looker, ['ps', '-o', 'pid,args'])).stdout;
    t.regex(ps, /^\s*1 \/pause$/m, 'the pod\'s pid 1 is its sandbox');
    t.regex(ps, /sleep 100001/, 'a container sees the other\'s processes');
    const alone = await cri.startContainer(own, { name: 'looker', image: 'second', args: STAYS('looker') });
    // Its shell may still be in its `exec sleep` (a kernel shows the new args before the new name): wait it out.
    const execDone = 'until [ "$(cat /proc/1/comm)" = sleep ]; do sleep 0.1; done; ps -o pid,args';
    const ownPs = (await cri.execSync(alone, ['sh', '-c', execDone])).stdout;
    t.notRegex(ownPs, /sleep 100001|pause/);
    t.regex(ownPs, /^\s*1 sleep 100000$/m);
    const sleeper = (await cri.client.runtime('ListContainers', { filter: { podSandboxId: shared.id } })).containers
      .find((container: { metadata: { name: string } }) => container.metadata.name === 'sleeper').id as string;
    const ns = async (id: string, name: string) => (await cri.execSync(id, ['readlink', `/proc/self/ns/${name}`])).stdout;
    t.is(await ns(looker, 'ipc'), await ns(sleeper, 'ipc'));
    t.is(await ns(looker, 'uts'), await ns(sleeper, 'uts'));
    t.is(await ns(looker, 'net'), await ns(sleeper, 'net'));
    t.not(await ns(looker, 'mnt'), await ns(sleeper, 'mnt'));
    t.is((await cri.execSync(looker, ['hostname'])).stdout, 'shared-pid\n');
  });

  test(`${handler}: 10 pods started in parallel all run, and all go`, async (t) => {
    timeout(t, 3);
    const cri = await env();
    const pods = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
      const pod = await cri.runPod({ handler });
      await cri.startContainer(pod, { name: 'app', image: i % 2 ? 'first' : 'second', args: STAYS(`pod${i}`) });
      return pod;
    }));
    for (const [i, pod] of pods.entries()) t.regex(await cri.log(pod, 'app', /started/), new RegExp(`started-pod${i}`));
    const ips = await Promise.all(pods.map(async (pod) => (await cri.podStatus(pod.id)).network.ip as string));
    t.is(new Set(ips).size, 10, 'ten pod IPs');
    await Promise.all(pods.map((pod) => removePod(cri, pod)));
    for (const pod of pods) await nothingLeft(t, cri, pod, []);
  });

  test(`${handler}: nothing is left after RemovePodSandbox`, async (t) => {
    timeout(t);
    const cri = await env();
    const { pod, ids } = await runningPair(cri, handler);
    await removePod(cri, pod);
    await nothingLeft(t, cri, pod, ids);
    t.deepEqual(podShims(pod), []);
  });

  if (handler !== 'runc') {
    test(`${handler}: after kill -9 of the pod's shim, CRI sees the containers exited and RemovePodSandbox leaves nothing`, async (t) => {
      timeout(t);
      const cri = await env();
      const { pod, ids } = await runningPair(cri, handler);
      const shims = podShims(pod);
      t.is(shims.length, 1, 'one shim serves the pod');
      process.kill(shims[0]!, 'SIGKILL');
      await until(async () => (await cri.containerState(ids[0]!)) === 'CONTAINER_EXITED', 'CRI to see the container exited');
      t.is(await cri.containerState(ids[1]!), 'CONTAINER_EXITED');
      await removePod(cri, pod);
      await nothingLeft(t, cri, pod, ids);
    });
  }
}
