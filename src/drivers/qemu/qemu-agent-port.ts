// The agent's end in a microVM is a set of virtio-serial ports, agent.0…agent.N-1, each a unix socket that
// QEMU serves on the host and accepts one client on at a time. A client leases a free port with flock(2) (the
// kernel drops the lease when the holder dies) and then waits for the agent's greeting: each session on a port
// starts with an EVENT `event=ready`, and whatever comes before it is the tail of an earlier session.
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { connectUnix } from '../../host/unix-socket.js';
import { FileLock } from '../../host/file-lock.js';
import { AgentClient } from '../../agent-client/agent-client.js';
import { encodeFrame, FrameType } from '../../agent-client/agent-frame.js';
import { AGENT_GREETING, AGENT_PORT_LOCK, AGENT_PORT_NAME, AGENT_PORT_SOCKET } from '../../generated/facts.js';

export const GREETING = encodeFrame(0, FrameType.Event, Buffer.from(`${AGENT_GREETING}\0`));

export function agentPortName(index: number): string {
  return AGENT_PORT_NAME(index);
}

export function agentPortSocket(dir: string, index: number): string {
  return join(dir, AGENT_PORT_SOCKET(index));
}

export function agentPortLock(dir: string, index: number): string {
  return join(dir, AGENT_PORT_LOCK(index));
}

/** A port this process holds: its socket, and the lock that keeps other clients off it. */
export interface PortLease {
  index: number;
  release(): void;
}

/** Leases a free port, or waits for one (they are all busy only while that many clients talk at once). */
export async function leasePort(dir: string, ports: number): Promise<PortLease> {
  // Start at a different port each time: a port just released may still carry its old session for a moment.
  const first = Math.floor(Math.random() * ports);
  for (let i = 0; i < ports; i++) {
    const index = (first + i) % ports;
    const lock = FileLock.tryAcquire(agentPortLock(dir, index));
    if (lock) return { index, release: () => lock.release() };
  }
  const lock = await FileLock.acquire(agentPortLock(dir, first));
  return { index: first, release: () => lock.release() };
}

/**
 * Connects to a port's socket and resolves once the agent's greeting has come: the socket, paused, with what
 * followed the greeting put back. Rejects on a connection error or when `signal` aborts.
 */
export function openSession(path: string, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectUnix(path);
    let seen = Buffer.alloc(0);
    const finish = (error?: Error) => {
      signal.removeEventListener('abort', onAbort);
      socket.removeListener('data', onData);
      socket.removeListener('error', finish);
      socket.removeListener('close', onClose);
      if (error) {
        socket.destroy();
        reject(error);
      }
    };
    const onAbort = () => finish(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    const onClose = () => finish(new Error('the port closed before the agent greeted'));
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const at = seen.indexOf(GREETING);
      if (at < 0) {
        // Keep only what could be the start of a greeting split across chunks.
        seen = seen.subarray(Math.max(0, seen.length - GREETING.length + 1));
        return;
      }
      socket.pause();
      finish();
      const rest = seen.subarray(at + GREETING.length);
      if (rest.length) socket.unshift(rest);
      resolve(socket);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort);
    socket.on('data', onData);
    socket.on('error', finish);
    socket.on('close', onClose);
  });
}

/** An AgentClient on a greeted session; the lease goes with the connection. */
export function clientOnSession(socket: Socket, lease: PortLease): AgentClient {
  const client = new AgentClient(socket);
  socket.once('close', () => lease.release());
  socket.resume();
  return client;
}
