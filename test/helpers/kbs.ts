// A key broker for a test (`runbox enclave kbs serve` on the test's own sockets, trusting the test's own vTPM CA),
// and a man in the middle on its guest socket that can rewrite what a guest sends, as a hostile host could.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutionContext } from 'ava';
import { isServed } from '../../src/host/unix-socket.js';
import { RUNBOX, runCommand, type TestEnv } from './runbox.js';
import { enclaveEnv } from './enclave.js';

export class TestKbs {
  readonly socket: string;
  readonly adminSocket: string;
  readonly logFile: string;
  readonly env: NodeJS.ProcessEnv;
  private child: ChildProcess | undefined;

  constructor(t: ExecutionContext, private readonly testEnv: TestEnv) {
    this.socket = join(testEnv.dir, 'kbs.sock');
    this.adminSocket = join(testEnv.dir, 'kbs-admin.sock');
    this.logFile = join(testEnv.dir, 'kbs.log');
    this.env = enclaveEnv(testEnv, {
      RUNBOX_ENCLAVE_EK_CA_DIR: join(testEnv.dir, 'ek-ca'),
      RUNBOX_ENCLAVE_KBS: this.socket,
      RUNBOX_ENCLAVE_KBS_ADMIN: this.adminSocket,
    });
    t.teardown(() => this.stop());
  }

  async start(): Promise<void> {
    const { openSync, closeSync } = await import('node:fs');
    const log = openSync(this.logFile, 'a');
    this.child = spawn(RUNBOX, ['enclave', 'kbs', 'serve'], { env: this.env, stdio: ['ignore', log, log] });
    closeSync(log);
    for (const end = Date.now() + 20_000; !(await isServed(this.adminSocket));) {
      if (Date.now() > end || this.child.exitCode !== null) throw new Error(`the key broker did not start: ${readFileSync(this.logFile, 'utf8')}`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  log(): string {
    return readFileSync(this.logFile, 'utf8');
  }

  async putResource(t: ExecutionContext, path: string, value: string): Promise<void> {
    const result = await runCommand(RUNBOX, ['enclave', 'kbs', 'put-resource', path], { env: this.env, input: value });
    t.is(result.code, 0, result.stderr);
  }

  /** `runbox enclave measure BUNDLE | runbox enclave kbs set-reference-values NAME`. */
  async register(t: ExecutionContext, name: string, bundle: string, measureEnv: NodeJS.ProcessEnv = {}): Promise<void> {
    const measured = await runCommand(RUNBOX, ['enclave', 'measure', bundle], { env: { ...this.env, ...measureEnv } });
    t.is(measured.code, 0, measured.stderr);
    const set = await runCommand(RUNBOX, ['enclave', 'kbs', 'set-reference-values', name], { env: this.env, input: measured.stdout });
    t.is(set.code, 0, set.stderr);
  }

  run(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
    return this.testEnv.run(args, { env: { ...this.env, ...extraEnv } });
  }
}

/** One HTTP/1.1 message read off a stream: its head and its body (Content-Length). */
class HttpReader {
  private pending = Buffer.alloc(0);

  constructor(private readonly onMessage: (head: string, body: Buffer) => void) {}

  feed(data: Buffer): void {
    this.pending = Buffer.concat([this.pending, data]);
    for (;;) {
      const end = this.pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.pending.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (this.pending.length < end + 4 + length) return;
      const body = this.pending.subarray(end + 4, end + 4 + length);
      this.pending = this.pending.subarray(end + 4 + length);
      this.onMessage(head, body);
    }
  }
}

function message(head: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${head.replace(/\r\ncontent-length:\s*\d+/i, `\r\nContent-Length: ${body.length}`)}\r\n\r\n`, 'latin1'), body]);
}

/** What a man in the middle does to a guest's Attestation body (parsed), before the broker sees it. */
export type AttestationRewrite = (attestation: Record<string, any>) => Record<string, any>;

/**
 * A socket in front of the broker's guest socket: what guests send passes through, except that each Attestation is
 * kept (`attestations`) and, when `rewrite` is set, replaced by what it returns.
 */
export class KbsMitm {
  readonly socket: string;
  readonly attestations: Array<Record<string, any>> = [];
  rewrite: AttestationRewrite | undefined;
  private readonly server: Server;

  constructor(t: ExecutionContext, testEnv: TestEnv, upstream: string) {
    this.socket = join(testEnv.dir, 'mitm.sock');
    this.server = createServer((guest: Socket) => {
      const broker = connect(upstream);
      broker.on('data', (data) => guest.write(data));
      broker.on('close', () => guest.destroy());
      guest.on('close', () => broker.destroy());
      const reader = new HttpReader((head, body) => {
        if (!head.startsWith('POST /kbs/v0/attest ')) {
          broker.write(message(head, body));
          return;
        }
        const attestation = JSON.parse(body.toString('utf8')) as Record<string, any>;
        this.attestations.push(attestation);
        const sent = this.rewrite ? this.rewrite(structuredClone(attestation)) : attestation;
        broker.write(message(head, Buffer.from(JSON.stringify(sent))));
      });
      guest.on('data', (data) => reader.feed(data));
    });
    t.teardown(() => new Promise<void>((resolve) => this.server.close(() => resolve())));
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socket, resolve));
  }
}

/** A quote's signature (TPMT_SIGNATURE, ECDSA P-256, SHA-256) by a key of no TPM: made in software here. */
export function softwareQuoteSignature(message: Buffer): { signature: Buffer; spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rs = sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const part = (bytes: Buffer) => Buffer.concat([Buffer.of(0, bytes.length), bytes]);
  return {
    signature: Buffer.concat([Buffer.of(0x00, 0x18, 0x00, 0x0b), part(rs.subarray(0, 32)), part(rs.subarray(32))]),
    spki: publicKey.export({ type: 'spki', format: 'der' }),
  };
}
