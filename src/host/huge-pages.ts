// dist/huge-pages.node (native/addon/huge-pages.c): transparent huge pages off for a program this process starts.
// The setting (PR_SET_THP_DISABLE) belongs to a process and is inherited across fork and execve, so it is turned
// off only around the spawn, which forks at once, and put back as it was.
import { nativeAddon } from './native-addon.js';

interface HugePagesAddon {
  hugePagesDisabled(): boolean;
  disableHugePages(): void;
  allowHugePages(): void;
}

/** Runs `start` (a synchronous spawn) so that the program it starts never gets transparent huge pages. */
export function withoutHugePages<T>(start: () => T): T {
  const addon = nativeAddon<HugePagesAddon>('huge-pages.node');
  if (addon.hugePagesDisabled()) return start();
  addon.disableHugePages();
  try {
    return start();
  } finally {
    addon.allowHugePages();
  }
}
