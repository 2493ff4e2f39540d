// containerd's own CRI plugin for the pod tests, without kubelet: a private containerd with CRI enabled in a
// network namespace of the test's (CNI's bridge and every pod address live there), CNI from Debian's
// containernetworking-plugins (bridge + host-local in a private conf_dir), the pause image built from C and
// imported into `k8s.io`, the test images on a loopback registry that a certs.d mirror names, and a CRI client.
// Handlers: `runc`, `runbox` (the emulated driver), `runbox-vm` (the qemu driver, through ConfigPath) and
// `runbox-vm-pool` (the qemu driver with VM members in the warm pool: `"pool": {"vms": VM_POOL_MEMBERS}`).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PrivateContainerd } from './containerd.js';
import { CriClient } from './cri-client.js';
import { namedImagesLayout, pauseImageArchive, TAG } from './cri-images.js';
import type { StreamExecResult } from './cri-stream-exec.js';
import { createNetns, inNetns, type NetNamespace } from './netns.js';
import { push, startRegistry } from './registry.js';
import { PROJECT, type Result } from './runbox.js';
import type { TeardownOwner } from './teardown.js';

/** The registry name the mirror maps to the loopback registry: images are MIRRORED/NAME:TAG. */
const MIRRORED = 'registry.runbox.test';
export const PAUSE_IMAGE = `${MIRRORED}/pause:${TAG}`;
export const HANDLERS = ['runc', 'runbox', 'runbox-vm', 'runbox-vm-pool'] as const;
export type Handler = (typeof HANDLERS)[number];
/** The pods' subnet, on the bridge in the test's network namespace. */
export const POD_SUBNET = '10.88.0.0/16';
/** The VM members (pooled shims holding a restored VM, docs/warm-pool.md) the `runbox-vm-pool` handler keeps. */
export const VM_POOL_MEMBERS = 2;

export interface CriOptions {
  /** The images pushed (and pulled through CRI): each is the busybox fixture plus /etc/image naming it. */
  images?: string[];
  /** More environment for containerd and so for runbox's shim (RUNBOX_QEMU_TEMPLATE_DIR…). */
  env?: NodeJS.ProcessEnv;
  /** The runbox-vm handler's runtime options file: `{"driver": "qemu", "annotations": …}`. */
  vmAnnotations?: Record<string, string>;
  /** The runbox-vm handler's `pool` settings (`{"vms": 1}`: pods' sandboxes take pooled shims holding a restored VM). */
  vmPool?: { size?: number; idleSeconds?: number; vms?: number };
}

export interface PodOptions {
  handler: Handler;
  /** NamespaceOption: network, pid, ipc as POD, CONTAINER or NODE. */
  namespaces?: { network?: string; pid?: string; ipc?: string };
  hostname?: string;
  annotations?: Record<string, string>;
  /** LinuxPodSandboxConfig.resources / overhead (as kubelet sends them with PodOverhead). */
  resources?: object;
  overhead?: object;
}

/** The environment variable every container of a test pod has, set to the pod's uid: its processes are found by it. */
export const POD_MARKER = 'RUNBOX_TEST_POD';

export interface Pod {
  id: string;
  name: string;
  config: { metadata: { uid: string }; linux: { securityContext: { namespaceOptions: object } } };
  logDirectory: string;
}

export interface ContainerOptions {
  name: string;
  image: string;
  args: string[];
  mounts?: Array<{ containerPath: string; hostPath: string; readonly?: boolean }>;
  envs?: Array<{ key: string; value: string }>;
  resources?: object;
  stdin?: boolean;
}

function criConfig(dir: string, network: string, vmOptions: string): string[] {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  const runtimes = `${cri}.containerd.runtimes`;
  const table = (name: string) => `[${name}]`;
  return [
    table(cri),
    `  sandbox_image = "${PAUSE_IMAGE}"`,
    '  netns_mounts_under_state_dir = true',
    // Root lacks CAP_SYS_RESOURCE on these machines: runc fails setting oom_score_adj -998 without it.
    '  restrict_oom_score_adj = true',
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    table(`${cri}.cni`),
    '  bin_dir = "/usr/lib/cni"',
    `  conf_dir = "${dir}/cni"`,
    table(`${cri}.registry`),
    `  config_path = "${dir}/certs.d"`,
    table(`${cri}.containerd`),
    '  default_runtime_name = "runc"',
    table(`${runtimes}.runc`),
    '  runtime_type = "io.containerd.runc.v2"',
    ...['runbox', 'runbox-vm', 'runbox-vm-pool'].flatMap((name) => [
      table(`${runtimes}.${name}`),
      '  runtime_type = "io.containerd.runbox.v2"',
      '  pod_annotations = ["io.runbox.*"]',
      '  container_annotations = ["io.runbox.*"]',
      table(`${runtimes}.${name}.options`),
      `  ConfigPath = "${name === 'runbox-vm' ? vmOptions : join(dir, `${name}.json`)}"`,
    ]),
    `# the network ${network}`,
  ];
}

export class CriEnv {
  private pods = 0;
  private readonly netnsFiles = new Map<string, string | undefined>();

  private constructor(
    readonly containerd: PrivateContainerd,
    readonly client: CriClient,
    readonly netns: NetNamespace,
    readonly dir: string,
  ) {}

  /** Everything above, started for one test (or one bench run); torn down with its owner. */
  static async start(owner: TeardownOwner, options: CriOptions = {}): Promise<CriEnv> {
    const netns = createNetns(owner);
    const registry = await startRegistry(owner, { netns });
    const images = options.images ?? ['first', 'second'];
    let containerdDir = '';
    const network = `rbx-pods-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const containerd = await PrivateContainerd.start(owner, options.env ?? {}, {
      netns,
      busybox: false,
      cri: (dir) => {
        containerdDir = dir;
        writeSetup(dir, network, registry.host, options.vmAnnotations ?? {}, options.vmPool);
        return criConfig(dir, network, join(dir, 'runbox-vm.json'));
      },
    });
    const client = new CriClient(containerd.address);
    const env = new CriEnv(containerd, client, netns, containerdDir);
    // Registered after containerd's own teardown, so run before it: pods go through CRI (CNI's DEL, netns files).
    owner.teardown(async () => {
      await env.removeAllPods().catch(() => {});
      client.close();
    });
    const imported = await containerd.ctrIn('k8s.io', ['images', 'import', '--base-name', `${MIRRORED}/pause`, pauseImageArchive(containerdDir)]);
    if (imported.code !== 0) throw new Error(`ctr images import of the pause image failed: ${imported.stderr}`);
    const layout = namedImagesLayout(containerdDir, images);
    for (const name of images) push(registry, layout, name, `${name}:${TAG}`);
    await env.ready();
    for (const name of images) await client.image('PullImage', { image: { image: env.image(name) } });
    return env;
  }

  /** The reference CRI pulls image NAME by (through the mirror). */
  image(name: string): string {
    return `${MIRRORED}/${name}:${TAG}`;
  }

  /** Until CRI's status says both the runtime and the network are ready (CNI's config loaded). */
  private async ready(): Promise<void> {
    let status: any;
    for (let i = 0; i < 200; i++) {
      status = await this.client.runtime('Status', {});
      if (status.status.conditions.every((condition: { status: boolean }) => condition.status)) return;
      await sleep(50);
    }
    throw new Error(`CRI never became ready: ${JSON.stringify(status)}`);
  }

  /** RunPodSandbox with the handler and options; its logs go to a directory of its own. */
  async runPod(options: PodOptions): Promise<Pod> {
    const name = `pod-${++this.pods}`;
    const logDirectory = join(this.dir, 'logs', name);
    mkdirSync(logDirectory, { recursive: true });
    const config = {
      metadata: { name, uid: `uid-${process.pid}-${this.pods}-${Math.random().toString(36).slice(2, 8)}`, namespace: 'default', attempt: 0 },
      hostname: options.hostname ?? name,
      logDirectory,
      dnsConfig: { servers: ['10.88.0.53'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
      annotations: options.annotations ?? {},
      linux: {
        securityContext: { namespaceOptions: { network: 'POD', pid: 'CONTAINER', ipc: 'POD', ...options.namespaces } },
        ...(options.resources && { resources: options.resources }),
        ...(options.overhead && { overhead: options.overhead }),
      },
    };
    const response = await this.client.runtime('RunPodSandbox', { config, runtimeHandler: options.handler });
    const pod = { id: response.podSandboxId as string, name, config, logDirectory };
    this.podNetns(pod);
    return pod;
  }

  /** CreateContainer (not started) in the pod: its log is LOG_DIRECTORY/NAME.log. */
  async createContainer(pod: Pod, options: ContainerOptions): Promise<string> {
    const response = await this.client.runtime('CreateContainer', {
      podSandboxId: pod.id,
      sandboxConfig: pod.config,
      config: {
        metadata: { name: options.name, attempt: 0 },
        image: { image: this.image(options.image) },
        args: options.args,
        // KeyValue.value is bytes upstream (string in containerd 1.6's copy: the same on the wire).
        envs: [...(options.envs ?? []), { key: POD_MARKER, value: pod.config.metadata.uid }].map(({ key, value }) => ({ key, value: Buffer.from(value) })),
        mounts: (options.mounts ?? []).map((mount) => ({ ...mount, readonly: mount.readonly ?? false })),
        logPath: `${options.name}.log`,
        stdin: options.stdin ?? false,
        // As kubelet: a container's namespaces are its pod's.
        linux: { resources: options.resources ?? {}, securityContext: { namespaceOptions: pod.config.linux.securityContext.namespaceOptions } },
      },
    });
    return response.containerId;
  }

  async startContainer(pod: Pod, options: ContainerOptions): Promise<string> {
    const id = await this.createContainer(pod, options);
    await this.client.runtime('StartContainer', { containerId: id });
    return id;
  }

  async execSync(containerId: string, cmd: string[], timeout = 30): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const response = await this.client.runtime('ExecSync', { containerId, cmd, timeout }, (timeout + 30) * 1000);
    return { stdout: response.stdout.toString(), stderr: response.stderr.toString(), exitCode: response.exitCode };
  }

  /** CRI's streaming Exec, as kubelet's client runs it (WebSocket, in the stream server's network namespace). */
  async streamExec(containerId: string, cmd: string[], stdin?: string): Promise<StreamExecResult> {
    const { url } = await this.client.runtime('Exec', { containerId, cmd, stdin: stdin !== undefined, stdout: true, stderr: true, tty: false });
    const result = await this.hostSide(process.execPath, [join(PROJECT, 'dist', 'test', 'helpers', 'cri-stream-exec.js'), url], 60_000, stdin);
    if (result.code !== 0) throw new Error(`streaming exec failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as StreamExecResult;
  }

  async containerState(containerId: string): Promise<string> {
    return (await this.client.runtime('ContainerStatus', { containerId })).status.state;
  }

  async podStatus(podId: string): Promise<any> {
    return (await this.client.runtime('PodSandboxStatus', { podSandboxId: podId })).status;
  }

  /** The container's log in CRI's format (TIMESTAMP STREAM TAG TEXT lines) once it holds `until`. */
  async log(pod: Pod, name: string, until: RegExp): Promise<string> {
    let text = '';
    for (let i = 0; i < 300; i++) {
      try {
        text = readFileSync(join(pod.logDirectory, `${name}.log`), 'utf8');
      } catch {
        text = '';
      }
      if (until.test(text)) return text;
      await sleep(50);
    }
    throw new Error(`the log of ${name} never matched ${until}: ${JSON.stringify(text)}`);
  }

  /** Stop and remove every pod CRI knows (what kubelet does when pods are deleted). */
  async removeAllPods(): Promise<void> {
    const { items } = await this.client.runtime('ListPodSandbox', {});
    await Promise.all(items.map(async (pod: { id: string }) => {
      await this.client.runtime('StopPodSandbox', { podSandboxId: pod.id });
      await this.client.runtime('RemovePodSandbox', { podSandboxId: pod.id });
    }));
  }

  /** A command on the host side of the pods: in the test's network namespace, where the bridge is. */
  hostSide(command: string, args: string[], timeoutMs = 30_000, input?: string): Promise<Result> {
    const [file, argv] = inNetns(this.netns, command, args);
    return new Promise((resolve) => {
      const child = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
      child.stdin.end(input ?? '');
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  /**
   * The network namespace file containerd made for the pod (its sandbox's config.json names it), remembered
   * from the first call, while the sandbox's bundle is there.
   */
  podNetns(pod: Pod): string | undefined {
    if (!this.netnsFiles.has(pod.id)) {
      try {
        const spec = JSON.parse(readFileSync(join(this.containerd.dir, 'state', 'io.containerd.runtime.v2.task', 'k8s.io', pod.id, 'config.json'), 'utf8')) as {
          linux?: { namespaces?: Array<{ type: string; path?: string }> };
        };
        this.netnsFiles.set(pod.id, spec.linux?.namespaces?.find((ns) => ns.type === 'network')?.path);
      } catch {
        return undefined;
      }
    }
    return this.netnsFiles.get(pod.id);
  }

  /**
   * The pod addresses host-local still holds for the sandbox `id` (one file per address, naming its holder). Another
   * pod's address may be released between the listing and the read: a file gone by then is not held.
   */
  addressesHeld(id: string): string[] {
    const held: string[] = [];
    const ipam = join(this.dir, 'cni-ipam');
    const holder = (path: string): string => {
      try {
        return readFileSync(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
        throw error;
      }
    };
    for (const network of existsSync(ipam) ? readdirSync(ipam) : []) {
      for (const address of readdirSync(join(ipam, network))) {
        if (/^\d+\.\d+\.\d+\.\d+$/.test(address) && holder(join(ipam, network, address)).includes(id)) held.push(address);
      }
    }
    return held;
  }
}

/** The CNI conflist, the certs.d mirror and the runtime options files, in containerd's directory. */
function writeSetup(
  dir: string, network: string, registryHost: string, vmAnnotations: Record<string, string>, vmPool?: CriOptions['vmPool'],
): void {
  mkdirSync(join(dir, 'cni'), { recursive: true });
  writeFileSync(join(dir, 'cni', '10-pods.conflist'), JSON.stringify({
    cniVersion: '0.4.0',
    name: network,
    plugins: [
      {
        type: 'bridge', bridge: 'rbx0', isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: POD_SUBNET }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(dir, 'cni-ipam') },
      },
    ],
  }));
  mkdirSync(join(dir, 'certs.d', MIRRORED), { recursive: true });
  writeFileSync(join(dir, 'certs.d', MIRRORED, 'hosts.toml'), [
    `server = "http://${registryHost}"`,
    `[host."http://${registryHost}"]`,
    '  capabilities = ["pull", "resolve"]',
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'runbox.json'), JSON.stringify({ driver: 'emulated' }));
  writeFileSync(join(dir, 'runbox-vm.json'), JSON.stringify({ driver: 'qemu', annotations: vmAnnotations, ...(vmPool && { pool: vmPool }) }));
  writeFileSync(join(dir, 'runbox-vm-pool.json'), JSON.stringify({ driver: 'qemu', annotations: vmAnnotations, pool: { vms: VM_POOL_MEMBERS } }));
}
