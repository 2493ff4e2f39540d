// CRI's streaming Exec as kubelet's client does it over WebSocket (protocol v4.channel.k8s.io: each binary
// message starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the final status as JSON). Run as a program
// (`node cri-stream-exec.js URL`, stdin's bytes sent on channel 0, a JSON result printed) where the stream
// server listens: in the CRI tests, containerd's network namespace.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';

export interface StreamExecResult {
  stdout: string;
  stderr: string;
  /** channel 3's status: {"status":"Success"} or a Failure whose details.causes hold the ExitCode. */
  status: { status?: string; reason?: string; details?: { causes?: Array<{ reason?: string; message?: string }> } };
}

const OPCODE = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** A client frame: FIN, masked (RFC 6455 5.3). */
function frame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const length = payload.length;
  const header = length < 126 ? Buffer.from([0x80 | opcode, 0x80 | length])
    : length < 65536 ? Buffer.from([0x80 | opcode, 0x80 | 126, length >> 8, length & 0xff])
    : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(length)); return b; })()]);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i]! ^= mask[i % 4]!;
  return Buffer.concat([header, mask, masked]);
}

/** Server frames (never masked) out of a byte stream: calls onMessage with each whole message. */
function frameReader(onMessage: (opcode: number, payload: Buffer) => void): (chunk: Buffer) => void {
  let buffered = Buffer.alloc(0);
  let fragments: Buffer[] = [];
  let fragmentOpcode = 0;
  return (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      if (buffered.length < 2) return;
      let length = buffered[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        length = Number(buffered.readBigUInt64BE(2));
        offset = 10;
      }
      if (buffered.length < offset + length) return;
      const fin = (buffered[0]! & 0x80) !== 0;
      const opcode = buffered[0]! & 0x0f;
      const payload = buffered.subarray(offset, offset + length);
      buffered = buffered.subarray(offset + length);
      if (opcode !== OPCODE.continuation) fragmentOpcode = opcode;
      fragments.push(Buffer.from(payload));
      if (fin) {
        onMessage(fragmentOpcode, Buffer.concat(fragments));
        fragments = [];
      }
    }
  };
}

/** Runs the exec behind `url` (from CRI's Exec), sending `stdin` on channel 0 if given. */
export function streamExec(url: string, stdin?: Buffer): Promise<StreamExecResult> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, {
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Protocol': 'v4.channel.k8s.io',
      },
    });
    request.on('error', reject);
    request.on('response', (response) => reject(new Error(`no WebSocket upgrade: HTTP ${response.statusCode}`)));
    request.on('upgrade', (_response, socket: Duplex, head: Buffer) => {
      const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], status: '' };
      const read = frameReader((opcode, payload) => {
        if (opcode === OPCODE.ping) socket.write(frame(OPCODE.pong, payload));
        else if (opcode === OPCODE.close) socket.end(frame(OPCODE.close, payload.subarray(0, 2)));
        else if (opcode === OPCODE.binary && payload.length > 0) {
          const data = payload.subarray(1);
          if (payload[0] === 1) out.stdout.push(data);
          else if (payload[0] === 2) out.stderr.push(data);
          else if (payload[0] === 3) out.status += data.toString();
        }
      });
      const result = (): StreamExecResult => ({
        stdout: Buffer.concat(out.stdout).toString(),
        stderr: Buffer.concat(out.stderr).toString(),
        status: out.status ? JSON.parse(out.status) : {},
      });
      socket.on('data', read);
      // The server may reset the connection once it has sent the status, before the close handshake.
      socket.on('error', (error) => (out.status ? resolve(result()) : reject(error)));
      socket.on('close', () => resolve(result()));
      if (head.length) read(head);
      if (stdin) socket.write(frame(OPCODE.binary, Buffer.concat([Buffer.from([0]), stdin])));
    });
    request.end();
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const stdin = Buffer.concat(chunks);
  const result = await streamExec(process.argv[2]!, stdin.length ? stdin : undefined);
  process.stdout.write(JSON.stringify(result));
}
