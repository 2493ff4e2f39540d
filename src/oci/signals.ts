import { constants } from 'node:os';

const byName = constants.signals as Record<string, number>;

/**
 * Parses a signal as runc does: a name with or without the SIG prefix, in any case, or a number; 0 checks that
 * the process is there and sends nothing, as kill(2) does.
 */
export function parseSignal(text: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    const n = Number(trimmed);
    if (n >= 0 && n <= 64) return n;
  } else {
    const upper = trimmed.toUpperCase();
    const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
    const n = byName[name];
    if (n !== undefined) return n;
    const rt = /^SIGRTM(IN|AX)([+-]\d+)?$/.exec(name);
    if (rt) {
      const n = (rt[1] === 'IN' ? 34 : 64) + Number(rt[2] ?? 0);
      if (n >= 34 && n <= 64) return n;
    }
  }
  throw new Error(`unknown signal "${text}"`);
}

export function signalName(signal: number): string {
  for (const [name, n] of Object.entries(byName)) if (n === signal) return name;
  return String(signal);
}
