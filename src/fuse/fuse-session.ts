// A FUSE server spoken directly on a /dev/fuse descriptor, no libfuse: requests read one per read(2) (each read
// waits in a thread of libuv's pool, several at once), handed to a read-only filesystem, replies written back.
// A server that takes over a connection whose previous server died asks the kernel first to queue again the
// requests that server had read and never answered (FUSE_NOTIFY_RESEND), so their callers get their answer.
import { read, writeSync } from 'node:fs';
import { constants } from 'node:os';
import {
  attrOut, dirent, entryOut, FOPEN_KEEP_CACHE, FUSE_NOTIFY_RESEND, IN_HEADER_SIZE, initOut, NO_REPLY, Opcode, openOut, outHeader,
  OUT_HEADER_SIZE, parseHeader, statfsOut, type Attributes, type RequestHeader,
} from './fuse-protocol.js';

export interface DirectoryEntry {
  name: string;
  attr: Attributes;
}

/** What a read-only filesystem answers; a thrown error with an errno `code` (EIO…) becomes that error. */
export interface FuseFilesystem {
  lookup(parent: bigint, name: string): Attributes | undefined;
  getattr(node: bigint): Attributes | undefined;
  readdir(node: bigint): DirectoryEntry[] | undefined;
  /** A handle for reads; undefined: no such node. */
  open(node: bigint): bigint | undefined;
  read(node: bigint, handle: bigint, offset: number, size: number): Promise<Buffer>;
  release(node: bigint, handle: bigint): void;
  statfs(): { blocks: number; files: number };
}

const MAX_PAGES = 256;
/** Large enough for any request a read-only filesystem gets (the kernel wants at least 8 KiB). */
const REQUEST_BUFFER = 64 * 1024;
const ATTR_VALID_SECONDS = 3600;

function errno(error: unknown): number {
  const code = (error as NodeJS.ErrnoException).code;
  const number = code ? (constants.errno as Record<string, number>)[code] : undefined;
  return -(number ?? constants.errno.EIO);
}

export class FuseSession {
  private stopped = false;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  private readonly maxReadahead: number;

  /**
   * Serves `fd` with `readers` reads waiting at once (each holds a thread of libuv's pool: size it with
   * UV_THREADPOOL_SIZE). `takeOver`: the connection had a server before this one. `maxReadahead`: how far the
   * kernel may read ahead of what was asked (unlimited by default).
   */
  constructor(private readonly fd: number, private readonly fs: FuseFilesystem, options: { readers?: number; takeOver?: boolean; maxReadahead?: number } = {}) {
    this.maxReadahead = options.maxReadahead ?? 0xffffffff;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    if (options.takeOver) this.resend();
    for (let i = 0; i < (options.readers ?? 4); i++) this.readNext(Buffer.alloc(REQUEST_BUFFER));
  }

  /** Settles when the connection ends (the filesystem was unmounted or aborted). */
  get ended(): Promise<void> {
    return this.done;
  }

  private resend(): void {
    try {
      writeSync(this.fd, outHeader(OUT_HEADER_SIZE, FUSE_NOTIFY_RESEND, 0n));
    } catch {
      // A kernel without resend support: the requests the previous server held stay unanswered.
    }
  }

  private readNext(buffer: Buffer): void {
    if (this.stopped) return;
    read(this.fd, buffer, 0, buffer.length, null, (error, bytes) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EINTR' || code === 'EAGAIN' || code === 'ENOENT') return this.readNext(buffer);
        this.stopped = true;
        this.resolveDone();
        return;
      }
      const request = Buffer.from(buffer.subarray(0, bytes));
      this.readNext(buffer);
      void this.handle(request);
    });
  }

  private reply(header: RequestHeader, error: number, body?: Buffer): void {
    if (NO_REPLY.has(header.opcode)) return;
    const length = OUT_HEADER_SIZE + (error === 0 && body ? body.length : 0);
    const out = error === 0 && body ? Buffer.concat([outHeader(length, 0, header.unique), body]) : outHeader(length, error, header.unique);
    try {
      writeSync(this.fd, out);
    } catch {
      // The request was interrupted, or the connection is gone.
    }
  }

  private async handle(request: Buffer): Promise<void> {
    const header = parseHeader(request);
    const body = request.subarray(IN_HEADER_SIZE, header.length);
    try {
      const result = await this.dispatch(header, body);
      this.reply(header, 0, result);
    } catch (error) {
      this.reply(header, errno(error));
    }
  }

  private async dispatch(header: RequestHeader, body: Buffer): Promise<Buffer | undefined> {
    const noEntry = Object.assign(new Error('no such node'), { code: 'ENOENT' });
    switch (header.opcode) {
      case Opcode.INIT:
        return initOut(body, MAX_PAGES, this.maxReadahead);
      case Opcode.LOOKUP: {
        const attr = this.fs.lookup(header.nodeid, body.toString('utf8', 0, body.indexOf(0) < 0 ? body.length : body.indexOf(0)));
        if (!attr) throw noEntry;
        return entryOut(attr, ATTR_VALID_SECONDS);
      }
      case Opcode.GETATTR: {
        const attr = this.fs.getattr(header.nodeid);
        if (!attr) throw noEntry;
        return attrOut(attr, ATTR_VALID_SECONDS);
      }
      case Opcode.OPEN: {
        const handle = this.fs.open(header.nodeid);
        if (handle === undefined) throw noEntry;
        return openOut(handle, FOPEN_KEEP_CACHE);
      }
      case Opcode.READ: {
        const handle = body.readBigUInt64LE(0);
        const offset = Number(body.readBigUInt64LE(8));
        const size = body.readUInt32LE(16);
        return this.fs.read(header.nodeid, handle, offset, size);
      }
      case Opcode.RELEASE:
        this.fs.release(header.nodeid, body.readBigUInt64LE(0));
        return undefined;
      case Opcode.OPENDIR:
        if (!this.fs.readdir(header.nodeid)) throw noEntry;
        return openOut(0n, 0);
      case Opcode.READDIR: {
        const entries = this.fs.readdir(header.nodeid) ?? [];
        const offset = Number(body.readBigUInt64LE(8));
        const size = body.readUInt32LE(16);
        const parts: Buffer[] = [];
        let used = 0;
        for (let i = offset; i < entries.length; i++) {
          const entry = entries[i]!;
          const part = dirent(entry.attr.ino, i + 1, entry.name, (entry.attr.mode >> 12) & 0o17);
          if (used + part.length > size) break;
          parts.push(part);
          used += part.length;
        }
        return Buffer.concat(parts);
      }
      case Opcode.STATFS: {
        const { blocks, files } = this.fs.statfs();
        return statfsOut(blocks, files);
      }
      case Opcode.RELEASEDIR:
      case Opcode.FLUSH:
      case Opcode.DESTROY:
        return undefined;
      case Opcode.FORGET:
      case Opcode.BATCH_FORGET:
      case Opcode.INTERRUPT:
        return undefined;
      default:
        throw Object.assign(new Error('not implemented'), { code: 'ENOSYS' });
    }
  }
}
