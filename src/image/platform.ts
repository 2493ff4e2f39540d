// Platforms (os/architecture[/variant]) as --platform and image indexes write them.
import { UsageError } from '../errors/errors.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

export function hostPlatform(): Platform {
  const architecture = NODE_ARCH[process.arch] ?? process.arch;
  return { os: 'linux', architecture, ...(architecture === 'arm64' ? { variant: 'v8' } : {}) };
}

export function parsePlatform(text: string): Platform {
  const [os, architecture, variant, extra] = text.split('/');
  if (!os || !architecture || extra !== undefined || variant === '') throw new UsageError(`invalid platform "${text}": want os/architecture[/variant]`);
  return { os, architecture, ...(variant ? { variant } : {}) };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

/** Whether an index entry's platform serves `wanted`; arm64's variant defaults to v8 on both sides. */
export function platformMatches(entry: Platform, wanted: Platform): boolean {
  if (entry.os !== wanted.os || entry.architecture !== wanted.architecture) return false;
  const normal = (p: Platform): string | undefined => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
  return wanted.variant === undefined || normal(entry) === normal(wanted);
}
