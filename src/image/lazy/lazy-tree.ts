// The root filesystem of an image as one tree, from its layers' entries alone (TOCs, or the index of a layer
// pulled whole): layers applied in order as an unpacker would (whiteouts and opaque directories hide what the
// layers below put there, a directory met again keeps its children, hardlinks are one node), each regular file
// pointing at where its bytes are rather than holding them. Paths are resolved inside the tree only.
import type { TreeNode } from '../../erofs/erofs-image.js';
import type { TocEntry } from './estargz-toc.js';
import type { Chunk, LayerFile } from './layer-index.js';
import { LazyTreeError } from '../../errors/errors.js';

/** Where a regular file's bytes are: chunks of an eStargz layer, or a span of a local uncompressed tar. */
export type FileData = { kind: 'chunks'; file: LayerFile } | { kind: 'local'; blob: string; offset: number };

export type LazyNode = TreeNode<FileData>;

export interface LayerEntries {
  layer: string;
  entries: TocEntry[];
  /** A regular file's data, by entry name. */
  data(entry: TocEntry): FileData | undefined;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const MAX_SYMLINK_HOPS = 40;


function seconds(modtime: string | undefined): number {
  if (!modtime) return 0;
  const ms = Date.parse(modtime);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : 0;
}

function newDir(): LazyNode {
  return { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, size: 0, children: new Map() };
}

function split(name: string): string[] {
  return name.split('/').filter(Boolean);
}

/** The directory `parts` names, symlinks of the tree followed inside it, missing directories made. */
function directory(root: LazyNode, parts: string[], hops = 0): LazyNode {
  let dir = root;
  const stack: LazyNode[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '..') {
      dir = stack.pop() ?? root;
      continue;
    }
    let child = dir.children!.get(part);
    if (!child) {
      child = newDir();
      dir.children!.set(part, child);
    }
    if (child.type === 'symlink') {
      if (hops >= MAX_SYMLINK_HOPS) throw new LazyTreeError(`too many symlinks under ${parts.slice(0, i + 1).join('/')}`);
      const target = child.target ?? '';
      const base = target.startsWith('/') ? [] : parts.slice(0, i);
      return directory(root, [...base, ...split(target), ...parts.slice(i + 1)].reduce<string[]>((out, p) => (p === '..' ? out.slice(0, -1) : [...out, p]), []), hops + 1);
    }
    if (child.type !== 'dir') throw new LazyTreeError(`${parts.slice(0, i + 1).join('/')} is not a directory`);
    stack.push(dir);
    dir = child;
  }
  return dir;
}

function node(entry: TocEntry, data: FileData | undefined): LazyNode {
  const base = { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: seconds(entry.modtime), mtimeNsec: 0, size: 0, ...(entry.xattrs && Object.keys(entry.xattrs).length ? { xattrs: new Map(Object.entries(entry.xattrs)) } : {}) };
  switch (entry.type) {
    case 'dir':
      return { ...base, type: 'dir', children: new Map() };
    case 'reg':
      return { ...base, type: 'reg', size: entry.size, ...(data ? { data } : {}) };
    case 'symlink':
      return { ...base, type: 'symlink', target: entry.linkName ?? '' };
    case 'char':
    case 'block':
      return { ...base, type: entry.type, rdevMajor: entry.devMajor, rdevMinor: entry.devMinor };
    case 'fifo':
      return { ...base, type: 'fifo' };
    default:
      throw new LazyTreeError(`entry "${entry.name}": unexpected type ${entry.type}`);
  }
}

/** Applies one layer onto `root` (made by `mergeLayers`). */
function applyLayer(root: LazyNode, layer: LayerEntries): void {
  // Whiteouts hide only what the layers below put there: they go first.
  for (const entry of layer.entries) {
    const parts = split(entry.name);
    const base = parts.at(-1) ?? '';
    if (!base.startsWith(WHITEOUT)) continue;
    const dir = directory(root, parts.slice(0, -1));
    if (base === OPAQUE) dir.children!.clear();
    else if (!base.startsWith(`${WHITEOUT}${WHITEOUT}`)) dir.children!.delete(base.slice(WHITEOUT.length));
  }
  for (const entry of layer.entries) {
    const parts = split(entry.name);
    const base = parts.at(-1);
    if (!base) {
      if (entry.type === 'dir') Object.assign(root, { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: seconds(entry.modtime) });
      continue;
    }
    if (base.startsWith(WHITEOUT)) continue;
    const dir = directory(root, parts.slice(0, -1));
    const existing = dir.children!.get(base);
    if (entry.type === 'hardlink') {
      const targetParts = split(entry.linkName ?? '');
      const target = targetParts.length ? directory(root, targetParts.slice(0, -1)).children!.get(targetParts.at(-1)!) : undefined;
      if (!target || target.type === 'dir') throw new LazyTreeError(`entry "${entry.name}": hardlink to "${entry.linkName}", which is not a file of the layers`);
      dir.children!.set(base, target);
      continue;
    }
    const made = node(entry, entry.type === 'reg' ? layer.data(entry) : undefined);
    if (made.type === 'dir' && existing?.type === 'dir') {
      Object.assign(existing, { mode: made.mode, uid: made.uid, gid: made.gid, mtime: made.mtime, xattrs: made.xattrs });
      continue;
    }
    dir.children!.set(base, made);
  }
}

/** The merged tree of `layers`, lowest first. */
export function mergeLayers(layers: LayerEntries[]): LazyNode {
  const root = newDir();
  for (const layer of layers) {
    try {
      applyLayer(root, layer);
    } catch (error) {
      throw new LazyTreeError(`layer ${layer.layer}: ${(error as Error).message}`);
    }
  }
  return root;
}

/** Every regular file node with data, each once, in walk order. */
export function regularFiles(root: LazyNode): LazyNode[] {
  const seen = new Set<LazyNode>();
  const walk = (dir: LazyNode): void => {
    for (const name of [...dir.children!.keys()].sort()) {
      const child = dir.children!.get(name)!;
      if (child.type === 'dir') walk(child);
      else if (child.type === 'reg' && child.data && !seen.has(child)) seen.add(child);
    }
  };
  walk(root);
  return [...seen];
}

/** The chunks a file's data is made of (none for a local one). */
export function fileChunks(file: LazyNode): Chunk[] {
  return file.data?.kind === 'chunks' ? file.data.file.chunks : [];
}
