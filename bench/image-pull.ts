// Pull + unpack of one ~100 MB, 4-layer image from a loopback docker-registry, by runbox (`bundle --image`: pull
// into a fresh store, then unpack), by containerd 1.6 (`ctr image pull`, which unpacks into its overlayfs
// snapshotter; a private daemon, fresh each round) and by `skopeo copy` to a directory (no unpacking). The image
// is generated here, deterministically: AES-CTR keystream files (incompressible, seeded) packed by umoci.
import { spawnSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrivateContainerd } from '../test/helpers/containerd.js';
import { startRegistry } from '../test/helpers/registry.js';
import { cleanupList } from '../test/helpers/teardown.js';
import { median } from './stats.js';
import { verdict } from './verdict.js';

const ROUNDS = Number(process.env.BENCH_PULL_ROUNDS ?? 3);
const project = fileURLToPath(new URL('../../', import.meta.url));

export function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): void {
  const result = spawnSync(command, args, { encoding: 'utf8', env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr || result.stdout}`);
}

function timed(command: string, args: string[], env?: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  run(command, args, env ? { env } : {});
  return Number(process.hrtime.bigint() - started) / 1e6;
}


/** Deterministic pseudo-random bytes: the AES-256-CTR keystream for a seed. */
export function seeded(seed: string, size: number): Buffer {
  const key = Buffer.alloc(32);
  key.write(seed);
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

/** Four layers of ~25 MB: a few large files and many small ones each, one `umoci insert` apiece. Returns the layout path. */
function generateImage(work: string): string {
  const layout = join(work, 'layout');
  run('umoci', ['init', '--layout', layout]);
  run('umoci', ['new', '--image', `${layout}:bench`]);
  for (let layer = 0; layer < 4; layer++) {
    const dir = join(work, `layer${layer}`);
    mkdirSync(join(dir, 'small'), { recursive: true });
    for (let file = 0; file < 4; file++) writeFileSync(join(dir, `big-${file}`), seeded(`big-${layer}-${file}`, 5 * 1024 * 1024));
    for (let file = 0; file < 1000; file++) writeFileSync(join(dir, 'small', `f-${file}`), seeded(`small-${layer}-${file}`, 4096 + (file % 7) * 512));
    run('umoci', ['insert', '--image', `${layout}:bench`, dir, `/layer${layer}`]);
  }
  run('umoci', ['config', '--image', `${layout}:bench`, '--config.cmd', '/layer0/big-0', '--os', 'linux', '--architecture', 'amd64']);
  run('umoci', ['gc', '--layout', layout]);
  return layout;
}

/** The markdown table of the image pull benchmark. */
export async function imagePullBench(): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'runbox-bench-pull-'));
  const cleanups = cleanupList();
  try {
    const layout = generateImage(join(work, 'image'));
    const registry = await startRegistry(cleanups);
    const ref = `${registry.host}/bench/big:1`;
    run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:bench`, `docker://${ref}`]);
    const sizeOut = spawnSync('du', ['-sb', join(registry.storage, 'docker', 'registry', 'v2', 'blobs')], { encoding: 'utf8' });
    const megabytes = Number(sizeOut.stdout.split('\t')[0]) / 1e6;

    const samples: Record<'runbox' | 'containerd' | 'skopeo', number[]> = { runbox: [], containerd: [], skopeo: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const store = join(work, `store-${round}`);
      samples.runbox.push(timed(join(project, 'bin', 'runbox'), ['bundle', '-q', '--store', store, '--image', ref, join(work, `bundle-${round}`)]));
      rmSync(store, { recursive: true, force: true });
      rmSync(join(work, `bundle-${round}`), { recursive: true, force: true });

      const containerdRound = cleanupList();
      try {
        const containerd = await PrivateContainerd.start(containerdRound);
        samples.containerd.push(timed('ctr', ['-a', containerd.address, '-n', 'bench', 'images', 'pull', '--plain-http', ref]));
      } finally {
        await containerdRound.run();
      }

      samples.skopeo.push(timed('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `dir:${join(work, `skopeo-${round}`)}`]));
      rmSync(join(work, `skopeo-${round}`), { recursive: true, force: true });
    }
    const containerd = median(samples.containerd);
    const rows = (['runbox', 'containerd', 'skopeo'] as const).map((tool) => {
      const ms = median(samples[tool]);
      const what = { runbox: '`runbox bundle --image` (pull + unpack)', containerd: '`ctr image pull` (pull + unpack)', skopeo: '`skopeo copy` to dir (pull only)' }[tool];
      return `| ${what} | ${(ms / 1000).toFixed(2)} | ${(megabytes / (ms / 1000)).toFixed(0)} | ${(ms / containerd).toFixed(2)}× |`;
    });
    const runboxMs = median(samples.runbox);
    return [
      `${megabytes.toFixed(0)} MB in 4 layers from docker-registry on loopback; median of ${ROUNDS} rounds, fresh store each round`,
      '',
      '| tool | seconds | MB/s | ÷ containerd |',
      '| --- | ---: | ---: | ---: |',
      ...rows,
      '',
      `target: runbox no slower than containerd (${verdict(runboxMs / containerd, 1, '× containerd')})`,
      '',
    ].join('\n');
  } finally {
    await cleanups.run();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.stdout.write(await imagePullBench());
