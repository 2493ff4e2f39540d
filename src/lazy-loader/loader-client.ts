// The CLI's side of the lazy loader: connect to the store's loader, starting it (detached, so that it outlives the
// CLI) when none answers, and ask it for an image.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectUnix } from '../host/unix-socket.js';
import { projectPath } from '../host/install-paths.js';
import { loaderPaths, makeLoaderDirs } from './loader-paths.js';
import type { LoaderReply, LoaderRequest } from './loader-protocol.js';
import { LazyLoaderError } from '../errors/errors.js';

const START_TIMEOUT_MS = 15_000;

function tryConnect(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connectUnix(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', () => resolve(undefined));
  });
}

export class LoaderConnection {
  private buffered = '';
  private readonly waiting: Array<(reply: LoaderReply) => void> = [];

  constructor(private readonly socket: Socket) {
    socket.on('data', (data) => {
      this.buffered += data.toString();
      for (let newline = this.buffered.indexOf('\n'); newline >= 0; newline = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        this.waiting.shift()?.(JSON.parse(line) as LoaderReply);
      }
    });
    socket.on('close', () => {
      for (const wake of this.waiting.splice(0)) wake({ ok: false, error: 'the lazy loader closed the connection' });
    });
  }

  ask(request: LoaderRequest): Promise<LoaderReply> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.write(`${JSON.stringify(request)}\n`);
    });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}

/** A connection to the loader of the store at `storeDir`; `start`: start one when none runs. */
export async function connectLoader(storeDir: string, start = true): Promise<LoaderConnection | undefined> {
  const paths = loaderPaths(storeDir);
  const first = await tryConnect(paths.socket);
  if (first) return new LoaderConnection(first);
  if (!start) return undefined;
  makeLoaderDirs(paths);
  const deadline = Date.now() + START_TIMEOUT_MS;
  let started = 0;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    // A keeper that finds the lock taken ends at once: another loader serves, or is on its way out.
    if (Date.now() - started > 2000) {
      const log = openSync(paths.log, 'a', 0o600);
      spawn(process.execPath, [projectPath('dist', 'src', 'lazy-loader', 'loader-main.js'), 'keeper', storeDir], { detached: true, stdio: ['ignore', log, log] }).unref();
      closeSync(log);
      started = Date.now();
    }
    await sleep(Math.min(20 * 2 ** attempt, 200));
    const socket = await tryConnect(paths.socket);
    if (socket) return new LoaderConnection(socket);
  }
  throw new LazyLoaderError(`the lazy loader of store ${storeDir} did not start (see ${paths.log})`);
}
