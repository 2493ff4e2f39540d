// The lazy loader's FUSE filesystem: one directory of read-only files, each a lazily loaded image's EROFS image
// (named by its manifest digest). Node ids and file handles are the image's place in the served list, so that
// a server that takes over the connection after a restart answers the kernel's ids as the one before did.
import type { FuseFilesystem, DirectoryEntry } from '../fuse/fuse-session.js';
import { FUSE_ROOT_ID, type Attributes } from '../fuse/fuse-protocol.js';

export interface ServedFile {
  name: string;
  size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

const ROOT: Attributes = { ino: FUSE_ROOT_ID, size: 0, mode: 0o040500, nlink: 2, uid: 0, gid: 0, mtime: 0 };

export class ImageFiles implements FuseFilesystem {
  /** By node id (2, 3, …); undefined where an image is listed but not loaded yet. */
  private readonly files: Array<{ name: string; size: number; load: () => Promise<ServedFile> } | undefined> = [];
  private readonly loaded = new Map<bigint, Promise<ServedFile>>();

  /** Serves `file` under node id `node` (its place in the served list, from 2). */
  set(node: number, name: string, size: number, load: () => Promise<ServedFile>): void {
    this.files[node - 2] = { name, size, load };
  }

  private entry(node: bigint): { name: string; size: number; load: () => Promise<ServedFile> } | undefined {
    return node >= 2n ? this.files[Number(node) - 2] : undefined;
  }

  private attr(node: bigint): Attributes | undefined {
    if (node === FUSE_ROOT_ID) return ROOT;
    const file = this.entry(node);
    return file && { ino: node, size: file.size, mode: 0o100400, nlink: 1, uid: 0, gid: 0, mtime: 0 };
  }

  lookup(parent: bigint, name: string): Attributes | undefined {
    if (parent !== FUSE_ROOT_ID) return undefined;
    const index = this.files.findIndex((file) => file?.name === name);
    return index < 0 ? undefined : this.attr(BigInt(index + 2));
  }

  getattr(node: bigint): Attributes | undefined {
    return this.attr(node);
  }

  readdir(node: bigint): DirectoryEntry[] | undefined {
    if (node !== FUSE_ROOT_ID) return undefined;
    return this.files.flatMap((file, i) => (file ? [{ name: file.name, attr: this.attr(BigInt(i + 2))! }] : []));
  }

  open(node: bigint): bigint | undefined {
    return this.entry(node) ? node : undefined;
  }

  async read(node: bigint, _handle: bigint, offset: number, size: number): Promise<Buffer> {
    const entry = this.entry(node);
    if (!entry) throw Object.assign(new Error('no such image'), { code: 'ENOENT' });
    let file = this.loaded.get(node);
    if (!file) {
      file = entry.load();
      this.loaded.set(node, file);
      file.catch(() => this.loaded.delete(node));
    }
    return (await file).read(offset, size);
  }

  release(): void {}

  statfs(): { blocks: number; files: number } {
    return { blocks: this.files.reduce((sum, file) => sum + Math.ceil((file?.size ?? 0) / 4096), 0), files: this.files.length + 1 };
  }
}
