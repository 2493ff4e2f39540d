// An OCI bundle from a stored image: DIR/rootfs (its layers unpacked) and DIR/config.json (from its config).
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../runtime/atomic-file.js';
import { specFromImageConfig, type SpecOverrides } from './bundle-spec.js';
import { parseImageConfig } from './image-config.js';
import type { ImageRecord } from './image-index.js';
import type { ImageStore } from './image-store.js';
import { unpackLayers } from './unpack.js';

/** Makes the bundle in `dir` (absent or empty); on failure removes what it made. */
export async function createBundle(store: ImageStore, image: ImageRecord, dir: string, overrides: SpecOverrides = {}): Promise<void> {
  const existed = existsSync(dir);
  if (existed && readdirSync(dir).length > 0) throw new Error(`bundle directory ${dir} is not empty`);
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  try {
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs, { mode: 0o755 });
    await unpackLayers(
      image.layers.map((layer) => ({
        digest: layer.digest,
        mediaType: layer.mediaType,
        open: async () => store.content.openBlob(layer.digest),
      })),
      rootfs,
    );
    const config = parseImageConfig(store.content.read(image.config.digest), `config of ${image.name}`);
    const spec = await specFromImageConfig(config, rootfs, overrides);
    writeFileAtomic(join(dir, 'config.json'), JSON.stringify(spec, null, 2), 0o644);
  } catch (error) {
    if (existed) for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true });
    else rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
