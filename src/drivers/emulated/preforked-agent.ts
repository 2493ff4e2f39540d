// The sandbox agent that bin/runbox's launcher forks for `create` before Node starts (native/cli/), so that
// it starts while Node does. It waits on a socketpair for its arguments; the emulated driver's first boot in this
// process takes it. Unused, it dies with this process (the launcher set its PR_SET_PDEATHSIG).
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { parentPid } from '../../host/host-process.js';
import { ENV_PREFORKED_AGENT } from '../../generated/facts.js';

interface Offer {
  fd: number;
  pid: number;
}

/** "FD PID" from the launcher, if FD is a socket and PID our own child: nothing else is trusted with it. */
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
  return parentPid(pid) === process.pid ? { fd, pid } : undefined;
}

let offer = readOffer(process.env[ENV_PREFORKED_AGENT]);
// Not for anything this process starts.
delete process.env[ENV_PREFORKED_AGENT];

export interface PreforkedAgent {
  pid: number;
  /** The agent's fd 3: it answers there as a spawned agent does on its fd 3 (native/agent/PROTOCOL.md). */
  stream: Socket;
}

/** The preforked agent, given its command-line arguments; undefined when there is none (or it was taken). */
export function takePreforkedAgent(args: string[]): PreforkedAgent | undefined {
  const taken = offer;
  offer = undefined;
  if (!taken) return undefined;
  const stream = new Socket({ fd: taken.fd, readable: true, writable: true });
  stream.write(args.map((arg) => `${arg}\0`).join('') + '\0');
  return { pid: taken.pid, stream };
}
