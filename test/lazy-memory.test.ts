// Lazy loading keeps its memory bounded however large the image: a container reads a large file whole, the
// background fetch brings the rest, and the loader's peak resident memory stays far below the image's size.
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrivateContainerd } from './helpers/containerd.js';
import { layoutWithFiles, pushEstargz, seededBytes } from './helpers/estargz.js';
import { loaderProcesses, stopLoader } from './helpers/lazy.js';
import { startRegistry } from './helpers/registry.js';
import { TestEnv } from './helpers/runbox.js';

const MIB = 1024 * 1024;

test('a large image with a small working set: the loader stays small while the whole image goes through it', async (t) => {
  const huge = seededBytes(160 * MIB, 5);
  const md5 = createHash('md5').update(huge).digest('hex');
  const containerd = await PrivateContainerd.start(t);
  const registry = await startRegistry(t);
  const ref = await pushEstargz(containerd, registry, layoutWithFiles(t, { 'data/huge': huge, 'data/tiny': Buffer.from('tiny\n') }), 'lazy/huge:1');
  const env = new TestEnv(t);
  const dir = mkdtempSync(join(tmpdir(), 'runbox-lazy-mem-'));
  const store = join(dir, 'store');
  t.teardown(async () => {
    await stopLoader(store);
    rmSync(dir, { recursive: true, force: true });
  });
  const bundle = join(store, 'bundles', 'huge');
  const made = await env.run(['bundle', '--image', ref, '--lazy', '--lazy-background-rate', '0', '--store', store, bundle, '--', 'sh', '-c', 'cat /data/tiny; md5sum /data/huge']);
  t.is(made.code, 0, made.stderr);
  const [server] = loaderProcesses(store).server;
  const kib = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${server}/status`, 'utf8'))![1]);
  const before = kib('VmRSS');
  const id = env.id();
  const ran = await env.run(['run', '--bundle', bundle, id], { timeout: 120_000 });
  t.is(ran.stdout, `tiny\n${md5}  /data/huge\n`);
  const peak = kib('VmHWM');
  t.log(`loader RSS ${Math.round(before / 1024)} MiB before, peak ${Math.round(peak / 1024)} MiB, for ${huge.length / MIB} MiB read on demand`);
  t.true((peak - before) * 1024 < 48 * MIB, `peak ${peak} KiB, before ${before} KiB`);
});
