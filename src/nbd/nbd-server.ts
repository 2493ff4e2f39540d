// A read-only NBD server (the fixed newstyle handshake, simple replies) on a unix socket: QEMU, as an NBD client,
// gets a disk whose blocks are read from the exports on demand. Exports are looked up by name when a client asks
// for one; requests are served concurrently and answered as each completes (by handle).
// Protocol: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md
import { createServer, type Server, type Socket } from 'node:net';

export interface NbdExport {
  size: number;
  /** Bytes [offset, offset + length), all of them (zeros past the export's data are the export's to give). */
  read(offset: number, length: number): Promise<Buffer>;
}

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;

const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;
const CLIENT_NO_ZEROES = 2;

const Opt = { EXPORT_NAME: 1, ABORT: 2, INFO: 6, GO: 7 } as const;
const Rep = { ACK: 1, INFO: 3, ERR_UNSUP: 0x80000001, ERR_UNKNOWN: 0x80000006, ERR_INVALID: 0x80000003 } as const;
const Cmd = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3 } as const;
const TRANSMISSION_FLAGS = 1 /* HAS_FLAGS */ | 2 /* READ_ONLY */ | 4 /* SEND_FLUSH */;
const EPERM = 1;
const EIO = 5;
const EINVAL = 22;
const MAX_READ = 32 * 1024 * 1024;

/** Bytes from a socket as they are asked for, in order. */
class Reader {
  private buffered = Buffer.alloc(0);
  private wanted: { length: number; resolve: (data: Buffer) => void } | undefined;
  private ended = false;

  constructor(socket: Socket) {
    socket.on('data', (data: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, data]);
      this.serve();
    });
    socket.on('close', () => {
      this.ended = true;
      this.serve();
    });
  }

  /** Exactly `length` bytes; undefined when the connection ends first. */
  read(length: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      this.wanted = { length, resolve: resolve as (data: Buffer) => void };
      this.serve();
    });
  }

  private serve(): void {
    const wanted = this.wanted;
    if (!wanted) return;
    if (this.buffered.length >= wanted.length) {
      this.wanted = undefined;
      const data = this.buffered.subarray(0, wanted.length);
      this.buffered = this.buffered.subarray(wanted.length);
      wanted.resolve(Buffer.from(data));
    } else if (this.ended) {
      this.wanted = undefined;
      (wanted.resolve as (data: Buffer | undefined) => void)(undefined);
    }
  }
}

function optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(20);
  head.writeBigUInt64BE(REPLY_MAGIC, 0);
  head.writeUInt32BE(option, 8);
  head.writeUInt32BE(type, 12);
  head.writeUInt32BE(data.length, 16);
  return Buffer.concat([head, data]);
}

function infoExport(size: number): Buffer {
  const info = Buffer.alloc(12);
  info.writeUInt16BE(0, 0); // NBD_INFO_EXPORT
  info.writeBigUInt64BE(BigInt(size), 2);
  info.writeUInt16BE(TRANSMISSION_FLAGS, 10);
  return info;
}

function infoBlockSize(): Buffer {
  const info = Buffer.alloc(14);
  info.writeUInt16BE(3, 0); // NBD_INFO_BLOCK_SIZE
  info.writeUInt32BE(1, 2);
  info.writeUInt32BE(4096, 6);
  info.writeUInt32BE(MAX_READ, 10);
  return info;
}

export class NbdServer {
  readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly lookup: (name: string) => NbdExport | undefined, private readonly onConnection?: (open: number) => void) {
    this.server = createServer((socket) => void this.session(socket));
  }

  /** Connections open now (QEMU keeps one per disk). */
  get connections(): number {
    return this.sockets.size;
  }

  close(): void {
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
  }

  private async session(socket: Socket): Promise<void> {
    this.sockets.add(socket);
    this.onConnection?.(this.sockets.size);
    socket.on('error', () => {});
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.onConnection?.(this.sockets.size);
    });
    const reader = new Reader(socket);
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(NBDMAGIC, 0);
    hello.writeBigUInt64BE(IHAVEOPT, 8);
    hello.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
    socket.write(hello);
    const clientFlags = await reader.read(4);
    if (!clientFlags) return;
    const noZeroes = (clientFlags.readUInt32BE(0) & CLIENT_NO_ZEROES) !== 0;
    const chosen = await this.negotiate(socket, reader, noZeroes);
    if (chosen) await this.transmit(socket, reader, chosen);
    socket.destroy();
  }

  /** Option haggling until the client picks an export (GO or EXPORT_NAME); undefined when it leaves. */
  private async negotiate(socket: Socket, reader: Reader, noZeroes: boolean): Promise<NbdExport | undefined> {
    for (;;) {
      const head = await reader.read(16);
      if (!head || head.readBigUInt64BE(0) !== IHAVEOPT) return undefined;
      const option = head.readUInt32BE(8);
      const length = head.readUInt32BE(12);
      if (length > 64 * 1024) return undefined;
      const data = length ? await reader.read(length) : Buffer.alloc(0);
      if (!data) return undefined;
      if (option === Opt.EXPORT_NAME) {
        const found = this.lookup(data.toString('utf8'));
        if (!found) return undefined; // this option has no error reply: the connection is closed
        const reply = Buffer.alloc(noZeroes ? 10 : 134);
        reply.writeBigUInt64BE(BigInt(found.size), 0);
        reply.writeUInt16BE(TRANSMISSION_FLAGS, 8);
        socket.write(reply);
        return found;
      }
      if (option === Opt.ABORT) {
        socket.write(optionReply(option, Rep.ACK));
        return undefined;
      }
      if (option === Opt.GO || option === Opt.INFO) {
        if (data.length < 6) {
          socket.write(optionReply(option, Rep.ERR_INVALID));
          continue;
        }
        const nameLength = data.readUInt32BE(0);
        const found = this.lookup(data.toString('utf8', 4, 4 + nameLength));
        if (!found) {
          socket.write(optionReply(option, Rep.ERR_UNKNOWN));
          continue;
        }
        socket.write(optionReply(option, Rep.INFO, infoExport(found.size)));
        socket.write(optionReply(option, Rep.INFO, infoBlockSize()));
        socket.write(optionReply(option, Rep.ACK));
        if (option === Opt.GO) return found;
        continue;
      }
      socket.write(optionReply(option, Rep.ERR_UNSUP));
    }
  }

  private async transmit(socket: Socket, reader: Reader, disk: NbdExport): Promise<void> {
    const reply = (handle: Buffer, error: number, data?: Buffer): void => {
      const head = Buffer.alloc(16);
      head.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
      head.writeUInt32BE(error, 4);
      handle.copy(head, 8);
      if (!socket.destroyed) socket.write(data && error === 0 ? Buffer.concat([head, data]) : head);
    };
    for (;;) {
      const request = await reader.read(28);
      if (!request || request.readUInt32BE(0) !== REQUEST_MAGIC) return;
      const type = request.readUInt16BE(6);
      const handle = request.subarray(8, 16);
      const offset = Number(request.readBigUInt64BE(16));
      const length = request.readUInt32BE(24);
      if (type === Cmd.DISC) return;
      if (type === Cmd.WRITE) {
        if (!(await reader.read(length))) return;
        reply(handle, EPERM);
      } else if (type === Cmd.FLUSH) {
        reply(handle, 0);
      } else if (type === Cmd.READ) {
        if (length > MAX_READ || offset + length > disk.size) {
          reply(handle, EINVAL);
          continue;
        }
        disk.read(offset, length).then((data) => reply(handle, 0, data), () => reply(handle, EIO));
      } else {
        reply(handle, EINVAL);
      }
    }
  }
}
