// The images of the CRI tests: a pause image built from C (test/helpers/pause.c, static) for containerd's
// sandbox_image, and two images that differ (the busybox fixture plus a file each names itself by), for the
// loopback registry.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT } from './runbox.js';
import { FIXTURE_OCI } from './registry.js';

/** The tag of every image made here: the images are named by repository alone. */
export const TAG = '1';

function umoci(args: string[]): void {
  execFileSync('umoci', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** An OCI layout in `dir` whose tag TAG is the pause image (entrypoint /pause), packed as a tar for ctr import. */
export function pauseImageArchive(dir: string): string {
  const work = join(dir, 'pause');
  mkdirSync(join(work, 'rootfs'), { recursive: true });
  execFileSync('gcc', ['-static', '-O2', '-o', join(work, 'pause'), join(PROJECT, 'test', 'helpers', 'pause.c')]);
  const layout = join(work, 'oci');
  umoci(['init', '--layout', layout]);
  umoci(['new', '--image', `${layout}:${TAG}`]);
  umoci(['insert', '--image', `${layout}:${TAG}`, '--no-history', join(work, 'pause'), '/pause']);
  umoci(['config', '--image', `${layout}:${TAG}`, '--config.entrypoint', '/pause', '--os', 'linux', '--architecture', 'amd64', '--no-history']);
  const archive = join(work, 'pause.tar');
  execFileSync('tar', ['-C', layout, '-cf', archive, '.']);
  return archive;
}

/**
 * A copy of the busybox fixture's layout with one more layer per name: image NAME (tag TAG) has /etc/image
 * saying NAME and a file /only-in-NAME, so that a container shows which image its rootfs is.
 */
export function namedImagesLayout(dir: string, names: string[]): string {
  const layout = join(dir, 'images');
  cpSync(FIXTURE_OCI, layout, { recursive: true });
  for (const name of names) {
    const files = join(dir, `files-${name}`);
    mkdirSync(files, { recursive: true });
    writeFileSync(join(files, 'image'), `${name}\n`);
    umoci(['insert', '--image', `${layout}:latest`, '--tag', name, '--no-history', join(files, 'image'), '/etc/image']);
    umoci(['insert', '--image', `${layout}:${name}`, '--no-history', join(files, 'image'), `/only-in-${name}`]);
  }
  return layout;
}
