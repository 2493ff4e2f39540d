// Pull progress on a terminal, as docker and nerdctl show it: one line per layer and a total, redrawn in place
// at most ten times a second. Nothing at all when stderr is not a terminal.
import type { PullEvent } from '../image/pull.js';

export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

interface LayerLine {
  digest: string;
  done: number;
  total: number;
  state: 'waiting' | 'downloading' | 'done' | 'exists';
}

export class PullProgress {
  private layers: LayerLine[] = [];
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  static forTerminal(quiet: boolean): PullProgress | undefined {
    return !quiet && process.stderr.isTTY ? new PullProgress() : undefined;
  }

  readonly onEvent = (event: PullEvent): void => {
    if (event.type === 'resolved') {
      this.layers = event.layers.map((layer) => ({ digest: layer.digest, done: 0, total: layer.size, state: 'waiting' }));
    } else {
      const layer = this.layers.find((line) => line.digest === event.digest);
      if (!layer) return;
      if (event.type === 'progress') {
        layer.done = event.done;
        layer.state = 'downloading';
      } else {
        layer.done = layer.total;
        layer.state = event.cached ? 'exists' : 'done';
      }
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, 100);
  };

  finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.draw();
  }

  private draw(): void {
    const lines = this.layers.map((layer) => {
      const name = layer.digest.slice(layer.digest.indexOf(':') + 1, layer.digest.indexOf(':') + 13);
      const status = layer.state === 'exists' ? 'already exists' : layer.state === 'done' ? 'done' : layer.state === 'waiting' ? 'waiting' : `${formatBytes(layer.done)} / ${formatBytes(layer.total)}`;
      return `${name}: ${status}`;
    });
    const done = this.layers.reduce((sum, layer) => sum + layer.done, 0);
    const total = this.layers.reduce((sum, layer) => sum + layer.total, 0);
    lines.push(`total: ${formatBytes(done)} / ${formatBytes(total)}`);
    const up = this.drawn ? `\x1b[${this.drawn}A` : '';
    this.out.write(`${up}${lines.map((line) => `\x1b[2K${line}`).join('\n')}\n`);
    this.drawn = lines.length;
  }
}

/** The line a lazy start leaves on the terminal: what it waited for, and where to watch the rest arrive. */
export function lazyStartLine(image: string, served: { prefetched: number; size: number }): string {
  return `${image}: started after prefetching ${formatBytes(served.prefetched)} of ${formatBytes(served.size)}; the rest comes on demand and in the background (runbox image stats --follow ${image})\n`;
}
