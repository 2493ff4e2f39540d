import { chmodSync, closeSync, constants, lstatSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';

/** Longest path a sockaddr_un holds, less its NUL. */
const SUN_PATH_MAX = 107;
/** The longest path bindUnixSocket takes: less what the private directory adds ('/.rpc-XXXXXX/s'). */
const MAX_SOCKET_PATH = SUN_PATH_MAX - 13;

/**
 * net.connect to the unix socket at a path of any length: one longer than a sockaddr_un holds (a state root and a
 * long container id) is reached through its directory, open for the moment of connect(2) as /proc/self/fd/N.
 */
export function connectUnix(path: string): Socket {
  if (Buffer.byteLength(path) <= SUN_PATH_MAX) return connect(path);
  let directory: number;
  try {
    directory = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (error) {
    // As connect(2) would fail: an 'error' event on the socket.
    const socket = new Socket();
    process.nextTick(() => socket.destroy(error as Error));
    return socket;
  }
  try {
    // Node's connect(2) happens within this call: the descriptor is needed no longer.
    return connect(`/proc/self/fd/${directory}/${basename(path)}`);
  } finally {
    closeSync(directory);
  }
}

/** The fd of a socket or server, undefined when it has none (Node exposes no public accessor; its handle carries it on POSIX systems). */
export function socketFd(socket: Socket | Server): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Whether something accepts connections on the socket at path. */
export function isServed(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connectUnix(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/**
 * Puts a listening socket at path with mode 0600, with no moment at which another user could connect to it: `bind`
 * listens at a path inside a fresh private directory beside path, then the socket is chmod'ed and renamed into
 * place, atomically replacing a stale socket file. A socket somebody still serves, or a file that is not a socket,
 * is left alone and reported. Resolves to the socket file's inode, for unlinkSocket. The directory is made when
 * missing, unless makeDirectory is false (then a missing directory fails the bind with ENOENT).
 */
export async function bindUnixSocket(
  path: string,
  bind: (privatePath: string) => Promise<void>,
  { makeDirectory = true }: { makeDirectory?: boolean } = {},
): Promise<number> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new Error(`socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes`);
  await refuseLiveOrForeign(path);
  const directory = dirname(path);
  if (makeDirectory) mkdirSync(directory, { recursive: true, mode: 0o700 });
  const privateDirectory = mkdtempSync(join(directory, '.rpc-'));
  try {
    const privatePath = join(privateDirectory, 's');
    await bind(privatePath);
    chmodSync(privatePath, 0o600);
    renameSync(privatePath, path);
    return lstatSync(path).ino;
  } finally {
    rmSync(privateDirectory, { recursive: true, force: true });
  }
}

async function refuseLiveOrForeign(path: string): Promise<void> {
  let stats;
  try {
    stats = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) throw new Error(`${path} exists and is not a socket`);
  if (await isServed(path)) throw Object.assign(new Error(`${path} is already served by another process`), { code: 'EADDRINUSE' });
}

/** Removes the socket file at path if it is still the one bound (not a successor's that replaced it). */
export function unlinkSocket(path: string, inode: number): void {
  try {
    if (lstatSync(path).ino === inode) unlinkSync(path);
  } catch {
    // already gone
  }
}

/**
 * Two connected unix stream sockets, like socketpair(2) (which Node lacks), for handing each end to another process:
 * a listener in a private directory (0700, removed before this returns) accepts the one connection made to it.
 */
export async function connectedPair(): Promise<[Socket, Socket]> {
  const directory = mkdtempSync(join(tmpdir(), '.runbox-pair-'));
  const server = createServer();
  try {
    const path = join(directory, 's');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, resolve);
    });
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const client = connect(path);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    return [client, await accepted];
  } finally {
    server.close();
    rmSync(directory, { recursive: true, force: true });
  }
}
