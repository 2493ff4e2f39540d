// The sandbox agent that bin/runbox's launcher forks for `create` before Node starts (native/cli/), so that
// it starts while Node does. It waits on a socketpair for its arguments; the emulated driver's first boot in this
// process takes it. Unused, it dies with the launcher (which set its PR_SET_PDEATHSIG): this process, or the
// launcher that handed a pooled CLI worker the call (docs/warm-pool.md).
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { parentPid } from '../../host/host-process.js';
import { callerPid } from '../../host/pooled-process.js';
import { ENV_PREFORKED_AGENT } from '../../generated/facts.js';

interface Offer {
  fd: number;
  pid: number;
}

/** "FD PID" from the launcher, if FD is a socket and PID the launcher's child: nothing else is trusted with it. */
function readOffer(value: string | undefined): Offer | undefined {
  const match = /^(\d+) (\d+)$/.exec(value ?? '');
  if (!match) return undefined;
  const fd = Number(match[1]);
  const pid = Number(match[2]);
  try {
    if (!fstatSync(fd).isSocket()) return undefined;
  } catch {
    return undefined;
  }
  return parentPid(pid) === callerPid() ? { fd, pid } : undefined;
}

/** Read at the first take, not at load: a pooled CLI worker loads this module before its call (and offer) come. */
let offer: Offer | undefined | null = null;

export interface PreforkedAgent {
  pid: number;
  /** The agent's fd 3: it answers there as a spawned agent does on its fd 3 (native/agent/PROTOCOL.md). */
  stream: Socket;
}

/** The preforked agent, given its command-line arguments; undefined when there is none (or it was taken). */
export function takePreforkedAgent(args: string[]): PreforkedAgent | undefined {
  const taken = offer === null ? readOffer(process.env[ENV_PREFORKED_AGENT]) : offer;
  offer = undefined;
  // Not for anything this process starts.
  delete process.env[ENV_PREFORKED_AGENT];
  if (!taken) return undefined;
  const stream = new Socket({ fd: taken.fd, readable: true, writable: true });
  stream.write(args.map((arg) => `${arg}\0`).join('') + '\0');
  return { pid: taken.pid, stream };
}
