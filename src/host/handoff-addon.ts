// dist/handoff.node (native/addon/handoff.c): what a pooled process needs of the system that Node does not offer —
// a handoff's bytes and fds taken off its socket (SCM_RIGHTS), a received fd put at a given number, every thread
// reniced once taken.
import { nativeAddon } from './native-addon.js';

export interface HandoffAddon {
  /** Reads a 4-byte big-endian length and that many bytes from the socket fd, with the fds sent along (close-on-exec). */
  receive(fd: number, timeoutMs: number): { data: Buffer; fds: number[] };
  dup2(from: number, to: number): void;
  close(fd: number): void;
  /** setpriority for every thread of the process. */
  renice(value: number): void;
}

export function handoffAddon(): HandoffAddon {
  return nativeAddon<HandoffAddon>('handoff.node');
}
