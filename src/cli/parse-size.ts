// Sizes on the command line (--quota, update's --memory…), with binary units as runc and docker read them.
import { UsageError } from '../errors/errors.js';

/** Sizes as users write them: 512M, 2G, 1.5GiB, 1000000. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i.exec(text.trim());
  if (!match) throw new UsageError(`invalid size "${text}": want a number with an optional K, M, G or T suffix`);
  const power = ' kmgt'.indexOf(match[2]!.toLowerCase() || ' ');
  return Math.floor(Number(match[1]) * 1024 ** power);
}
