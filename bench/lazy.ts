// Lazy loading against a full pull, over a modelled link (100 Mbit/s, 20 ms round trip, bench/throttled-link.ts)
// to a loopback docker-registry: a ~300 MB image whose workload reads a few MB at start (small libraries whole,
// 1 MB of a 64 MB file) and prints "ready". For each driver: `run --image` of the plain image (pull + unpack + run),
// `run --image --lazy` of it converted to eStargz (unoptimised) and optimised (`image optimize` with the same
// workload), each from a fresh store: the time from the command to the workload's first output, and the bytes
// that crossed the link before it.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { guestAssets } from '../src/drivers/qemu/guest-assets.js';
import { stopLoader } from '../test/helpers/lazy.js';
import { FIXTURE_OCI, startRegistry } from '../test/helpers/registry.js';
import { cleanupList } from '../test/helpers/teardown.js';
import { startThrottledLink, type ThrottledLink } from './throttled-link.js';
import { run, seeded } from './image-pull.js';
import { verdict } from './verdict.js';

const project = fileURLToPath(new URL('../../', import.meta.url));
const RUNBOX = join(project, 'bin', 'runbox');
const WORKLOAD = ['sh', '-c', 'cat /app/lib/* > /dev/null; head -c 1048576 /app/data/model.bin > /dev/null; echo ready'];
const MB = 1e6;

/** A command's stdout; its failure is an error. */
function output(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const result = spawnSync(command, args, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr || result.stdout}`);
  return result.stdout;
}

/** The busybox fixture plus /app: 20 libraries of 150 kB, a 64 MB model, 30 assets of 8 MB (incompressible). */
function generateImage(work: string): string {
  const layout = join(work, 'layout');
  cpSync(FIXTURE_OCI, layout, { recursive: true });
  const app = join(work, 'tree', 'app');
  for (const dir of ['lib', 'data', 'assets']) mkdirSync(join(app, dir), { recursive: true });
  // Sizes in whole tar blocks: Debian's umoci 0.4 `insert` leaves out the padding after a layer's last file.
  for (let i = 0; i < 20; i++) writeFileSync(join(app, 'lib', `lib${i}.so`), seeded(`lib-${i}`, 150_016));
  writeFileSync(join(app, 'data', 'model.bin'), seeded('model', 64 * 1024 * 1024));
  for (let i = 0; i < 30; i++) writeFileSync(join(app, 'assets', `asset-${i}.bin`), seeded(`asset-${i}`, 8 * 1024 * 1024));
  run('umoci', ['insert', '--image', `${layout}:latest`, app, '/app']);
  return layout;
}

interface Sample {
  seconds: number;
  bytes: number;
}

/** `runbox run` from a fresh store until the workload's first output; the bytes the link carried by then. */
async function firstOutput(link: ThrottledLink, args: string[], env: NodeJS.ProcessEnv): Promise<Sample> {
  const startBytes = link.bytes;
  const started = performance.now();
  const child = spawn(RUNBOX, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  const sample = await new Promise<Sample>((resolve, reject) => {
    child.stdout!.once('data', () => resolve({ seconds: (performance.now() - started) / 1000, bytes: link.bytes - startBytes }));
    child.once('exit', (code) => reject(new Error(`runbox ${args.join(' ')} exited ${code} before any output: ${stderr}`)));
  });
  await new Promise((resolve) => child.once('exit', resolve));
  return sample;
}

export async function lazyBench(): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'runbox-bench-lazy-'));
  const cleanups = cleanupList();
  try {
    const layout = generateImage(join(work, 'image'));
    const registry = await startRegistry(cleanups);
    run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${registry.host}/bench/app:plain`]);
    const prepStore = join(work, 'prep-store');
    run(RUNBOX, ['image', 'convert', '--estargz', '-q', '--store', prepStore, `${registry.host}/bench/app:plain`, `${registry.host}/bench/app:esgz`]);
    run(RUNBOX, ['image', 'optimize', '-q', '--store', prepStore, `${registry.host}/bench/app:plain`, `${registry.host}/bench/app:opt`, '--', ...WORKLOAD]);
    rmSync(prepStore, { recursive: true, force: true });
    const manifest = JSON.parse(output('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/bench/app:plain`])) as { layers: Array<{ size: number }> };
    const imageBytes = manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
    const link = await startThrottledLink(cleanups, registry.host, { bitsPerSecond: 100e6, rttMs: 20 });

    let qemu = true;
    try {
      guestAssets();
    } catch {
      qemu = false;
    }
    const drivers = qemu ? (['emulated', 'qemu'] as const) : (['emulated'] as const);
    const modes = [
      { name: 'full pull + unpack + run', tag: 'plain', lazy: false },
      { name: 'lazy, unoptimised', tag: 'esgz', lazy: true },
      { name: 'lazy, optimised', tag: 'opt', lazy: true },
    ];
    const rows: string[] = [];
    const verdicts: string[] = [];
    let count = 0;
    for (const driver of drivers) {
      const env = { ...process.env, RUNBOX_DRIVER: driver, RUNBOX_QEMU_ACCEL: 'tcg', RUNBOX_QEMU_TEMPLATE_DIR: join(work, 'templates') };
      // The microVM template is made once, beforehand: it is not what is measured here.
      if (driver === 'qemu') run(RUNBOX, ['--root', join(work, 'warm'), 'run', '--image', `${registry.host}/bench/app:plain`, '--store', join(work, 'warm-store'), '--rm', 'warm', '--', 'true'], { env });
      const results = new Map<string, Sample>();
      for (const mode of modes) {
        const store = join(work, `store-${++count}`);
        const sample = await firstOutput(link, ['--root', join(work, 'state'), 'run', '--image', `${link.host}/bench/app:${mode.tag}`, ...(mode.lazy ? ['--lazy'] : []), '--store', store, '--rm', '-q', `bench-${count}`, '--', ...WORKLOAD], env);
        await stopLoader(store);
        rmSync(store, { recursive: true, force: true });
        results.set(mode.tag, sample);
        rows.push(`| ${driver} | ${mode.name} | ${sample.seconds.toFixed(2)} | ${(sample.bytes / MB).toFixed(1)} | ${((sample.bytes / imageBytes) * 100).toFixed(1)}% |`);
      }
      const full = results.get('plain')!;
      const optimised = results.get('opt')!;
      const unoptimised = results.get('esgz')!;
      verdicts.push(
        `- ${driver}: optimised lazy start ${(full.seconds / optimised.seconds).toFixed(1)}× faster than the full pull (≥ 10×, ${full.seconds / optimised.seconds >= 10 ? 'met' : 'NOT met'}); ` +
          `fetched before first output ${((optimised.bytes / imageBytes) * 100).toFixed(1)}% of the image (${verdict((optimised.bytes / imageBytes) * 100, 5, '%')}); ` +
          `unoptimised lazy start ${(unoptimised.seconds / full.seconds).toFixed(2)}× the full pull's time (${verdict(unoptimised.seconds / full.seconds, 1, '×')})`,
      );
    }
    return [
      `An image of ${(imageBytes / MB).toFixed(0)} MB (compressed) whose workload reads ${(20 * 0.15 + 1.05).toFixed(1)} MB at start, through a link of 100 Mbit/s and 20 ms RTT to docker-registry on loopback; one run each, fresh store each run, background fetch at its default rate (8 MiB/s). Time from the command to the workload's first output; bytes the link carried by then.`,
      '',
      '| driver | mode | seconds to first output | MB fetched before it | share of the image |',
      '| --- | --- | ---: | ---: | ---: |',
      ...rows,
      '',
      'Targets:',
      ...verdicts,
      '',
    ].join('\n');
  } finally {
    await cleanups.run();
    spawnSync('umount', ['-R', '-l', work], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.stdout.write(await lazyBench());
