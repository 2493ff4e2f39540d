// OCI whiteouts (image-spec layer.md): `.wh.NAME` removes NAME from the layers below; `.wh..wh..opq` in a
// directory hides everything the layers below put there. Other `.wh..wh.*` names are AUFS bookkeeping and ignored.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type LayerProgress, removeNode } from './unpack-entries.js';
import { EntryRefused, type RootfsResolver, entryComponents, lstatOrNull } from './unpack-paths.js';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

export function isWhiteout(name: string): boolean {
  const base = name.replace(/\/+$/, '').split('/').pop() ?? '';
  return base.startsWith(WHITEOUT);
}

/** Removes what the layers below left in `dir`, keeping what this layer wrote (whatever the entry order). */
function clearBelow(resolver: RootfsResolver, dir: string, progress: LayerProgress): void {
  for (const child of readdirSync(dir)) {
    const path = join(dir, child);
    if (progress.written.has(path) || progress.ancestorsOfWritten.has(path)) {
      if (progress.ancestorsOfWritten.has(path) && lstatOrNull(path)?.isDirectory()) clearBelow(resolver, path, progress);
    } else {
      removeNode(resolver, path);
    }
  }
}

export function applyWhiteout(resolver: RootfsResolver, name: string, progress: LayerProgress): void {
  const components = entryComponents(name);
  const base = components.pop()!;
  const dir = resolver.directory(components, base === OPAQUE);
  if (!dir) return; // nothing below to hide
  if (base === OPAQUE) {
    clearBelow(resolver, resolver.host(dir), progress);
    return;
  }
  if (base.startsWith(WHITEOUT + WHITEOUT)) return;
  const hidden = base.slice(WHITEOUT.length);
  if (hidden === '' || hidden === '.' || hidden === '..') throw new EntryRefused('whiteout of an invalid name');
  const path = resolver.host([...dir, hidden]);
  if (!progress.written.has(path)) removeNode(resolver, path);
}
