// eStargz images for the lazy-loading tests, written by upstream's own tool: an OCI layout (the busybox fixture,
// plus files of a test's choosing in a layer of their own) imported into a private containerd, converted with
// `ctr-remote images convert --oci --estargz` and pushed to a loopback registry with `ctr images push`.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { PrivateContainerd } from './containerd.js';
import { FIXTURE_OCI, type Registry } from './registry.js';
import type { TeardownOwner } from './teardown.js';

/** A copy of the busybox layout whose tag `latest` has one more layer holding `files` (path in the image → bytes). */
export function layoutWithFiles(t: TeardownOwner, files: Record<string, Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-esgz-layout-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const layout = join(dir, 'oci');
  cpSync(FIXTURE_OCI, layout, { recursive: true });
  const tree = join(dir, 'tree');
  for (const [path, bytes] of Object.entries(files)) {
    mkdirSync(dirname(join(tree, path)), { recursive: true });
    writeFileSync(join(tree, path), bytes);
  }
  if (Object.keys(files).length > 0) {
    const inserted = spawnSync('umoci', ['insert', '--image', `${layout}:latest`, tree, '/'], { encoding: 'utf8' });
    if (inserted.status !== 0) throw new Error(`umoci insert: ${inserted.stderr}`);
  }
  return layout;
}

/** Imports `layout`:latest, converts it to eStargz with ctr-remote and pushes it as HOST/REPOSITORY:TAG. */
export async function pushEstargz(containerd: PrivateContainerd, registry: Registry, layout: string, target: string, extra: string[] = []): Promise<string> {
  const base = `import.local/${target.replace(/[:/]/g, '-')}`;
  const archive = join(containerd.dir, `${base.replace(/\//g, '-')}.tar`);
  spawnSync('tar', ['-C', layout, '-cf', archive, '.']);
  const step = async (command: string, args: string[]): Promise<void> => {
    const result = await (command === 'ctr' ? containerd.ctr(args, { timeout: 120_000 }) : runCtrRemote(containerd, args));
    if (result.code !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`);
  };
  await step('ctr', ['images', 'import', '--base-name', base, archive]);
  rmSync(archive);
  const ref = `${registry.host}/${target}`;
  await step('ctr-remote', ['images', 'convert', '--oci', '--estargz', ...extra, `${base}:latest`, ref]);
  // ctr's push sometimes breaks off (unexpected EOF) on a loaded machine: it resumes where it stopped.
  for (let attempt = 1; ; attempt++) {
    try {
      await step('ctr', ['images', 'push', '--plain-http', ref]);
      break;
    } catch (error) {
      if (attempt === 3) throw error;
    }
  }
  return ref;
}

async function runCtrRemote(containerd: PrivateContainerd, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const result = spawnSync('ctr-remote', ['-a', containerd.address, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: result.status, stderr: result.stderr };
}

/** `count` bytes that do not compress, the same for the same seed. */
export function seededBytes(count: number, seed: number): Buffer {
  const bytes = Buffer.alloc(count);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < count; i += 4) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes.writeUInt32LE(state >>> 0, Math.min(i, count - 4));
  }
  return bytes;
}
