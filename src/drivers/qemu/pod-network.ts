// A pod's network for its microVM, as Kata Containers plumbs it: in the network namespace CNI set up (its veth
// `eth0` holds the pod's address), a tap device `tap0` with tc redirecting every frame from the veth to the tap
// and back, so that the VM's virtio-net device (QEMU's end of the tap) is the pod's interface; the guest gives
// its NIC the veth's MAC, MTU, address and routes (agent/guest-net.c). QEMU runs in that namespace (nsenter
// --net, which leaves the mount namespace alone) and opens the tap by name.
import { spawn, spawnSync } from 'node:child_process';
import { SandboxError } from '../../errors/errors.js';
import { UNIT_SEPARATOR, type RecordList } from '../../agent-client/agent-records.js';
import type { Spec } from '../../oci/spec.js';

/** The tap QEMU's virtio-net device is plugged into, in the pod's network namespace (and in a template's). */
export const POD_TAP = 'tap0';
/** The interface CNI's plugins make in a pod's namespace. */
const POD_INTERFACE = 'eth0';

export interface PodNetwork {
  mac: string;
  mtu: number;
  /** ADDRESS/PREFIX, IPv4. */
  addresses: string[];
  routes: Array<{ dst: string; gateway?: string }>;
}

/** The network namespace file of a pod's sandbox spec (CNI's), if it has one. */
export function podNetnsPath(spec: Spec): string | undefined {
  return spec.linux?.namespaces?.find((ns) => ns.type === 'network')?.path;
}

/** Runs `script` in sh in the network namespace `netns`; its stdout. */
function inNetns(netns: string, script: string): string {
  const result = spawnSync('nsenter', [`--net=${netns}`, 'sh', '-ec', script], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new SandboxError(`the pod's network namespace ${netns}: ${(result.stderr || result.error?.message || '').trim()}`);
  }
  return result.stdout;
}

/** A shell's here-document feeding `lines` to COMMAND's batch mode (one process for all of them). */
const batch = (command: string, lines: string[]) => [`${command} -batch - <<'EOF'`, ...lines, 'EOF'];

/** tc redirecting every frame that arrives on `from` out of `to`. */
const redirect = (from: string, to: string) => [
  `qdisc add dev ${from} ingress`,
  `filter add dev ${from} parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev ${to}`,
];

/** Reads eth0's addresses and routes as JSON, one line each. */
const READ = batch('ip -j', [`addr show dev ${POD_INTERFACE}`, `route show dev ${POD_INTERFACE}`]);

/** eth0's MTU into $mtu: the word after `mtu` (/sys would show the namespace of whoever mounted sysfs, not this one). */
const READ_MTU = [
  `set -- $(ip -o link show dev ${POD_INTERFACE})`,
  'while [ $# -gt 1 ] && [ "$1" != mtu ]; do shift; done',
  'mtu=$2',
];

/** Brings the tap up at $mtu and redirects it to and from eth0 (over redirects left by a VM before: a retried boot). */
const CONNECT = [
  `ip link set dev ${POD_TAP} mtu "$mtu" up`,
  `tc qdisc del dev ${POD_INTERFACE} ingress 2>/dev/null || :`,
  ...batch('tc', [...redirect(POD_INTERFACE, POD_TAP), ...redirect(POD_TAP, POD_INTERFACE)]),
];

function parseNetwork(output: string, netns: string): PodNetwork {
  const [addrJson, routesJson] = output.split('\n').filter((line) => line.startsWith('['));
  const [link] = JSON.parse(addrJson ?? '[]') as Array<{ address: string; mtu: number; addr_info?: Array<{ family: string; local: string; prefixlen: number }> }>;
  if (!link) throw new SandboxError(`the pod's network namespace ${netns} has no ${POD_INTERFACE}`);
  const routes = JSON.parse(routesJson ?? '[]') as Array<{ dst: string; gateway?: string }>;
  return {
    mac: link.address,
    mtu: link.mtu,
    addresses: (link.addr_info ?? []).filter((info) => info.family === 'inet').map((info) => `${info.local}/${info.prefixlen}`),
    routes: routes.map(({ dst, gateway }) => ({ dst, ...(gateway && { gateway }) })),
  };
}

/**
 * Reads what CNI gave the pod (eth0's MAC, MTU, IPv4 addresses, routes) and plugs a new tap into it with tc
 * redirects both ways (a tap left by a VM before is replaced). Each process costs a few ms: it is one shell in the
 * pod's namespace, with `ip` and `tc` in batch mode.
 */
export function plugPodNetwork(netns: string): PodNetwork {
  return parseNetwork(inNetns(netns, [
    ...READ,
    ...READ_MTU,
    `ip link del ${POD_TAP} 2>/dev/null || :`,
    `ip tuntap add dev ${POD_TAP} mode tap vnet_hdr`,
    ...CONNECT,
  ].join('\n')), netns);
}

/**
 * Reads what CNI gave the pod, moves the tap in the network namespace of process `tapOf` (a waiting VM's QEMU,
 * vm-reserve.ts) into the pod's, over one left there, and connects it as plugPodNetwork does: one process tree. The
 * network comes as soon as it is read; `connected` once the tap is connected, after the move has waited for the
 * kernel (~25 ms: a device leaving a namespace waits for an RCU grace period), which the caller overlaps with the
 * guest's work.
 */
export function moveTapIn(netns: string, tapOf: number): { network: Promise<PodNetwork>; connected: Promise<void> } {
  // $1 the pod's namespace, $2 the script that reads its network, $3 the one that connects the tap there.
  const move = [
    'nsenter --net="$1" sh -ec "$2"',
    `ip link set dev ${POD_TAP} netns "$1" 2>/dev/null || { nsenter --net="$1" ip link del ${POD_TAP}; ip link set dev ${POD_TAP} netns "$1"; }`,
    'exec nsenter --net="$1" sh -ec "$3"',
  ].join('\n');
  const child = spawn('nsenter', [`--net=/proc/${tapOf}/ns/net`, 'sh', '-ec', move, 'sh', netns, READ.join('\n'), [...READ_MTU, ...CONNECT].join('\n')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const failure = (error?: Error) => new SandboxError(`the pod's network namespace ${netns}: ${(stderr || error?.message || 'the network script failed').trim()}`);
  const network = new Promise<PodNetwork>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      // READ's two JSON lines, whole: the address, then the routes.
      if (stdout.split('\n').filter((line) => line.startsWith('[')).length === 2 && stdout.endsWith('\n')) {
        try {
          resolve(parseNetwork(stdout, netns));
        } catch (error) {
          reject(error);
        }
      }
    });
    child.once('error', (error) => reject(failure(error))).once('close', () => reject(failure()));
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const connected = new Promise<void>((resolve, reject) => {
    child.once('error', (error) => reject(failure(error))).once('close', (code) => (code === 0 ? resolve() : reject(failure())));
  });
  return { network, connected };
}

/** Removes the tap (and so its redirect) from the pod's namespace, if both are still there. */
export function unplugPodNetwork(netns: string): void {
  spawnSync('nsenter', [`--net=${netns}`, 'ip', 'link', 'del', POD_TAP], { stdio: 'ignore' });
  spawnSync('nsenter', [`--net=${netns}`, 'tc', 'qdisc', 'del', 'dev', POD_INTERFACE, 'ingress'], { stdio: 'ignore' });
}

/** The records that give the guest's NIC the pod's network (agent/guest-net.c). */
export function podNetworkRecords(network: PodNetwork): RecordList {
  return [
    ['net_link', `${network.mac}${UNIT_SEPARATOR}${network.mtu}`],
    ...network.addresses.map((address): [string, string] => ['net_addr', address]),
    ...network.routes.map(({ dst, gateway }): [string, string] => ['net_route', gateway ? `${dst}${UNIT_SEPARATOR}${gateway}` : dst]),
  ];
}
