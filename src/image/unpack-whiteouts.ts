// OCI whiteouts (image-spec layer.md): `.wh.NAME` removes NAME from the layers below; `.wh..wh..opq` in a
// directory hides everything the layers below put there. Other `.wh..wh.*` names are AUFS bookkeeping and ignored.
import { EntryRefusedError } from '../errors/errors.js';
import { closeSync, readdirSync } from 'node:fs';
import type { LayerProgress } from './unpack-entries.js';
import { childKey, type Dir, type RootfsResolver, entryComponents, fdPath } from './unpack-paths.js';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

export function isWhiteout(name: string): boolean {
  const base = name.replace(/\/+$/, '').split('/').pop() ?? '';
  return base.startsWith(WHITEOUT);
}

/** Removes what the layers below left in `dir`, keeping what this layer wrote (whatever the entry order). */
function clearBelow(resolver: RootfsResolver, dir: Dir, progress: LayerProgress): void {
  for (const child of readdirSync(fdPath(dir.fd))) {
    const key = childKey(dir, child);
    if (!progress.written.has(key) && !progress.ancestorsOfWritten.has(key)) {
      resolver.remove({ dir, name: child });
      continue;
    }
    const sub = progress.ancestorsOfWritten.has(key) ? resolver.openChild(dir, child) : null;
    if (!sub) continue;
    try {
      clearBelow(resolver, sub, progress);
    } finally {
      closeSync(sub.fd);
    }
  }
}

export function applyWhiteout(resolver: RootfsResolver, name: string, progress: LayerProgress): void {
  const components = entryComponents(name);
  const base = components.pop()!;
  const dir = resolver.directory(components, base === OPAQUE);
  if (!dir) return; // nothing below to hide
  if (base === OPAQUE) {
    clearBelow(resolver, dir, progress);
    return;
  }
  if (base.startsWith(WHITEOUT + WHITEOUT)) return;
  const hidden = base.slice(WHITEOUT.length);
  if (hidden === '' || hidden === '.' || hidden === '..') throw new EntryRefusedError('whiteout of an invalid name');
  if (!progress.written.has(childKey(dir, hidden))) resolver.remove({ dir, name: hidden });
}
