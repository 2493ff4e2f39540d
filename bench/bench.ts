// npm run bench: runbox measured side by side with its peers, part by part, into BENCHMARKS.md (and on stdout).
// `--only NAME[,NAME]` runs those parts and leaves the other sections of BENCHMARKS.md as they were.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { guestAssets } from '../src/drivers/qemu/guest-assets.js';
import { cgroupsBench } from './cgroups.js';
import { imagePullBench } from './image-pull.js';
import { lazyBench } from './lazy.js';
import { lifecycleBench } from './lifecycle.js';
import { podsBench } from './pods-bench.js';
import { load, section, writeReport, type Part } from './report.js';
import { rpcBench } from './rpc-bench.js';
import { shimBench } from './shim-bench.js';
import { unpackBench } from './unpack.js';
import { vmBench } from './vm.js';

const project = fileURLToPath(new URL('../../', import.meta.url));

// A user's machine has no NODE_EXTRA_CA_CERTS: with it, every Node process started here (the floor, runbox, the
// shim) would parse a CA bundle first, which says something about this machine, not about runbox.
delete process.env.NODE_EXTRA_CA_CERTS;

interface Runnable extends Part {
  run: (context: { project: string; work: string }) => Promise<string>;
}

function vmPart(context: { project: string; work: string }): Promise<string> {
  try {
    guestAssets();
  } catch (error) {
    return Promise.resolve(`Not measured: ${(error as Error).message}\n`);
  }
  return vmBench(context);
}

// The microVMs right after the lifecycle, before the image benches: after them (hundreds of MB unpacked,
// containerd's store filled) the VM floor itself comes out slower and noisier on a 2-core machine.
const PARTS: Runnable[] = [
  { name: 'lifecycle', title: 'CLI lifecycle: runbox vs runc', about: 'Each runc lifecycle operation, runbox beside runc and a clean `node -e 0`.', run: lifecycleBench },
  { name: 'vm', title: 'microVMs: time to first output', about: 'runbox\'s qemu driver beside a bare QEMU boot of the same guest kernel into an init that powers off at once.', run: vmPart },
  { name: 'unpack', title: 'Unpacking layers', about: 'One image unpacked in-process by runbox, GNU tar and umoci.', run: () => unpackBench() },
  { name: 'pull', title: 'Image pull + unpack', about: 'One image pulled from docker-registry on loopback by runbox, containerd 1.6 and skopeo.', run: () => imagePullBench() },
  { name: 'rpc', title: 'rpc layer (ttrpc, gRPC)', about: 'Loading the protocol types, and round trips between two processes on a unix socket.', run: () => rpcBench() },
  { name: 'shim', title: 'containerd shim: runbox vs runc shim', about: '`ctr run --rm` through a private containerd 1.6 with runbox\'s shim and containerd\'s runc shim.', run: () => shimBench() },
  { name: 'lazy', title: 'Lazy loading: time to first output over a slow link', about: 'A ~300 MB image started by a full pull + unpack and lazily (eStargz, unoptimised and optimised), with each driver, through a modelled 100 Mbit/s, 20 ms link.', run: () => lazyBench() },
  { name: 'pods', title: 'Kubernetes pods through CRI: runc vs runbox vs runbox microVMs', about: 'Pods through containerd 1.6\'s own CRI plugin with runc\'s handler, runbox\'s emulated driver and runbox\'s microVMs (one VM per pod).', run: ({ work }) => podsBench(work) },
  { name: 'cgroups', title: 'Resource limits', about: '`runbox run` of /bin/true with and without cgroup limits (emulated driver), and `runbox update`.', run: () => cgroupsBench() },
];

const onlyAt = process.argv.indexOf('--only');
const wanted = onlyAt >= 0 ? (process.argv[onlyAt + 1] ?? '').split(',') : PARTS.map((part) => part.name);
const unknown = wanted.filter((name) => !PARTS.some((part) => part.name === name));
if (unknown.length) {
  process.stderr.write(`bench: unknown part ${unknown.join(', ')} (parts: ${PARTS.map((part) => part.name).join(', ')})\n`);
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'runbox-bench-'));
const sections = new Map<string, string>();
try {
  for (const part of PARTS.filter((candidate) => wanted.includes(candidate.name))) {
    const startedLoad = load();
    const text = section(part, await part.run({ project, work }), startedLoad);
    process.stdout.write(`${text}\n\n`);
    sections.set(part.name, text);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
  writeReport(join(project, 'BENCHMARKS.md'), PARTS.map((part) => part.name), sections);
}
