// `runbox image stats REF`: what lazy loading fetched of an image, per layer (bytes and their share of the layer,
// on demand, prefetched, in the background; reads served from the store and those that waited, with how long),
// from the store's lazy loader while it runs, else from the statistics it left. `--follow` redraws it on the
// terminal until the background fetch is done.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ImageRecord } from '../image/image-index.js';
import { connectLoader } from '../lazy-loader/loader-client.js';
import { imageFileName, loaderPaths } from '../lazy-loader/loader-paths.js';
import type { ImageStats } from '../lazy-loader/loader-protocol.js';
import { formatBytes } from './pull-progress.js';

/** The image's statistics: live from its loader, else the last it wrote; undefined when it was never served. */
export async function imageStats(storeDir: string, image: ImageRecord): Promise<ImageStats | undefined> {
  const loader = await connectLoader(storeDir, false);
  if (loader) {
    try {
      const reply = await loader.ask({ op: 'stats' });
      const live = reply.ok && 'stats' in reply ? reply.stats.find((stats) => stats.manifest === image.manifest) : undefined;
      if (live) return live;
    } finally {
      loader.close();
    }
  }
  try {
    return JSON.parse(readFileSync(join(loaderPaths(storeDir).stats, `${imageFileName(image.manifest)}.json`), 'utf8')) as ImageStats;
  } catch {
    return undefined;
  }
}

function share(part: number, whole: number): string {
  return whole > 0 ? `${Math.round((part / whole) * 100)}%` : '-';
}

export function statsTable(stats: ImageStats): string[] {
  const rows = [['LAYER', 'SIZE', 'FETCHED', 'SHARE', 'ON-DEMAND', 'PREFETCH', 'BACKGROUND', 'HITS', 'MISSES', 'WAIT AVG', 'WAIT MAX']];
  for (const layer of stats.layers) {
    const { fetched, hits, misses, waits, waitMs, maxWaitMs } = layer.stats;
    const total = fetched.demand + fetched.prefetch + fetched.background;
    rows.push([
      layer.digest.slice(7, 19), formatBytes(layer.size), layer.lazy ? formatBytes(total) : 'whole', layer.lazy ? share(total, layer.size) : '100%',
      formatBytes(fetched.demand), formatBytes(fetched.prefetch), formatBytes(fetched.background), String(hits), String(misses),
      waits ? `${Math.round(waitMs / waits)} ms` : '-', waits ? `${maxWaitMs} ms` : '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  const background = stats.background;
  lines.push(background
    ? `background: ${formatBytes(background.done)} / ${formatBytes(background.total)}${background.done >= background.total ? ' (done)' : ''}${background.failed ? `, ${background.failed} spans failed` : ''}${background.paused ? ` (paused: ${background.paused}; the rest comes on demand)` : ''}`
    : 'background: not started');
  return lines;
}

/** Redraws the table on `out` until the background fetch is done or the loader is gone. */
export async function followStats(storeDir: string, image: ImageRecord, out: NodeJS.WriteStream): Promise<void> {
  let drawn = 0;
  for (;;) {
    const stats = await imageStats(storeDir, image);
    if (!stats) return;
    const lines = statsTable(stats);
    out.write(`${drawn ? `\x1b[${drawn}A` : ''}${lines.map((line) => `\x1b[2K${line}`).join('\n')}\n`);
    drawn = lines.length;
    const background = stats.background;
    if ((background && (background.done >= background.total || background.paused)) || !(await connectLoader(storeDir, false).then((c) => (c?.close(), c !== undefined)))) return;
    await sleep(500);
  }
}
