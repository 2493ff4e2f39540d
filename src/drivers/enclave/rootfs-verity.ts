// An enclave's rootfs image with a dm-verity hash tree after it (format 1, SHA-256, 4 KiB blocks, no salt), whose
// root hash goes into the create request (the `rootfs_verity` record), so into the measured initdata: the guest
// reads the image through a verity device (native/agent/guest-verity.c), which refuses any block that is not the one
// measured, however the host changes the disk afterwards. The image is built reproducibly, so that
// `runbox enclave measure` computes the same root hash from the bundle.
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UNIT_SEPARATOR } from '../../agent-client/agent-records.js';
import { buildRootfsImage, fillRootfsDisk } from '../qemu/rootfs-image.js';
import { SandboxError } from '../../errors/errors.js';

const BLOCK = 4096;
const HASHES_PER_BLOCK = BLOCK / 32;

export interface RootfsVerity {
  rootHash: string;
  dataBlocks: number;
  /** Where the tree starts, in blocks from the device's start: right after the data. */
  hashStartBlock: number;
}

/** The `rootfs_verity` record's value (native/agent/PROTOCOL.md). */
export function verityRecord(verity: RootfsVerity): string {
  return [verity.rootHash, verity.dataBlocks, verity.hashStartBlock].join(UNIT_SEPARATOR);
}

/** Appends the hash tree to the image at `path` (a multiple of 4 KiB, as erofs makes it); returns its parameters. */
export function appendHashTree(path: string): RootfsVerity {
  const size = statSync(path).size;
  if (size % BLOCK || size === 0) throw new SandboxError(`the rootfs image ${path} is ${size} bytes, not whole 4 KiB blocks`);
  const dataBlocks = size / BLOCK;
  const block = Buffer.alloc(BLOCK);
  const fd = openSync(path, 'r');
  const level0 = Buffer.alloc(dataBlocks * 32);
  try {
    for (let i = 0; i < dataBlocks; i++) {
      readSync(fd, block, 0, BLOCK, i * BLOCK);
      createHash('sha256').update(block).digest().copy(level0, i * 32);
    }
  } finally {
    closeSync(fd);
  }
  // Each level is whole blocks of hashes, zero-filled, the hashes of the level below; the last fits in one block.
  const levels: Buffer[] = [];
  let hashes = level0;
  for (;;) {
    const blocks = Math.ceil(hashes.length / 32 / HASHES_PER_BLOCK);
    const level = Buffer.alloc(blocks * BLOCK);
    hashes.copy(level);
    levels.push(level);
    if (blocks === 1) break;
    hashes = Buffer.alloc(blocks * 32);
    for (let i = 0; i < blocks; i++) createHash('sha256').update(level.subarray(i * BLOCK, (i + 1) * BLOCK)).digest().copy(hashes, i * 32);
  }
  // One data block has no tree: its own hash is the root.
  if (dataBlocks === 1) return { rootHash: level0.toString('hex'), dataBlocks, hashStartBlock: dataBlocks };
  const rootHash = createHash('sha256').update(levels[levels.length - 1]!).digest('hex');
  // dm-verity keeps the top level first.
  for (const level of levels.reverse()) appendFileSync(path, level);
  return { rootHash, dataBlocks, hashStartBlock: dataBlocks };
}

/** Where a VM's verity parameters are kept beside its disk, for the Sandbox's create request. */
export function verityFile(sandboxDir: string): string {
  return join(sandboxDir, 'rootfs.verity.json');
}

/** The driver's image build: reproducible, with its hash tree, the parameters kept in the VM's directory; its size. */
export function fillVerityRootfs(rootfsDir: string, disk: string, sandboxDir: string): Promise<number> {
  return fillRootfsDisk(rootfsDir, disk, 0, 'erofs', {
    reproducible: true,
    appended: async (image) => writeFileSync(verityFile(sandboxDir), JSON.stringify(appendHashTree(image)), { mode: 0o600 }),
  });
}

/** The verity parameters of a rootfs directory's image, built aside and removed (`runbox enclave measure`). */
export async function rootfsVerity(rootfsDir: string): Promise<RootfsVerity> {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-measure-'));
  try {
    const image = join(dir, 'rootfs.img');
    await buildRootfsImage(rootfsDir, image, 'erofs', true);
    return appendHashTree(image);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function readVerity(sandboxDir: string): RootfsVerity | undefined {
  try {
    return JSON.parse(readFileSync(verityFile(sandboxDir), 'utf8')) as RootfsVerity;
  } catch {
    return undefined;
  }
}
