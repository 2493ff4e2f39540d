// The software TPM (swtpm) of an enclave sandbox, in its two lives: before QEMU starts, a swtpm the driver talks
// to over its data socket (to provision the TPM and measure the launch) that stores its volatile state and ends;
// then a swtpm for QEMU on the same state directory, reached only through its control channel, which takes up
// the stored state at QEMU's CMD_INIT (the TPM resumes with the launch measured) and dies with QEMU.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TpmError } from '../../errors/errors.js';
import { withParentDeath } from '../../host/host-process.js';
import { connectUnix } from '../../host/unix-socket.js';
import { untilListening } from '../../host/until-listening.js';

export const SWTPM_BINARY = process.env.RUNBOX_SWTPM ?? 'swtpm';

/** swtpm's control channel commands (swtpm's tpm_ioctl.h, "non-CUSE TPMs"). */
const CMD_SHUTDOWN = 0x03;
const CMD_STORE_VOLATILE = 0x0a;

/** How long the provisioning swtpm may take to listen, and each of its commands to answer. */
const SWTPM_TIMEOUT_MS = 10_000;

/** Where a sandbox's TPM state lives (0700): its own, never shared, removed with the sandbox. */
export function vtpmDir(sandboxDir: string): string {
  return join(sandboxDir, 'vtpm');
}

function stateOptions(dir: string): string[] {
  return ['--tpm2', '--tpmstate', `dir=${dir},mode=0600`, '--log', `file=${join(dir, 'swtpm.log')}`];
}

/** The argv of the swtpm that QEMU drives, its control channel on `ctrlFd` (a connected socket it inherits). */
export function swtpmForQemu(dir: string, ctrlFd: number): string[] {
  return withParentDeath([SWTPM_BINARY, 'socket', ...stateOptions(dir), '--ctrl', `type=unixio,clientfd=${ctrlFd}`]);
}

/** A byte stream that carries one TPM command at a time and reads back one whole response. */
class TpmStream {
  private pending = Buffer.alloc(0);
  private waiting: ((response: Buffer) => void) | undefined;
  private failed: Error | undefined;

  constructor(private readonly socket: Socket, private readonly headerBytes: (data: Buffer) => number | undefined) {
    socket.on('data', (data) => {
      this.pending = Buffer.concat([this.pending, data]);
      const length = this.headerBytes(this.pending);
      if (length !== undefined && this.pending.length >= length && this.waiting) {
        const response = this.pending.subarray(0, length);
        this.pending = this.pending.subarray(length);
        this.waiting(response);
        this.waiting = undefined;
      }
    });
    socket.on('error', (error) => {
      this.failed = error;
    });
  }

  transmit(data: Buffer, what: string): Promise<Buffer> {
    if (this.failed) return Promise.reject(new TpmError(`${what}: ${this.failed.message}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new TpmError(`${what}: swtpm did not answer within ${SWTPM_TIMEOUT_MS / 1000} s`)), SWTPM_TIMEOUT_MS);
      const closed = () => reject(new TpmError(`${what}: swtpm closed the connection`));
      this.socket.once('close', closed);
      this.waiting = (response) => {
        clearTimeout(timer);
        this.socket.off('close', closed);
        resolve(response);
      };
      this.socket.write(data);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The swtpm that provisions a sandbox's TPM before QEMU starts: started by the driver, dies with it. */
export class SwtpmProvisioner {
  private constructor(
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
    private readonly data: TpmStream,
    private readonly ctrl: TpmStream,
  ) {}

  /** Starts swtpm on a new state directory `dir` (made 0700), already through TPM2_Startup(CLEAR). */
  static async start(dir: string): Promise<SwtpmProvisioner> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const [dataPath, ctrlPath] = [join(dir, 'data.sock'), join(dir, 'ctrl.sock')];
    const argv = withParentDeath([SWTPM_BINARY, 'socket', ...stateOptions(dir),
      '--server', `type=unixio,path=${dataPath},mode=0600`, '--ctrl', `type=unixio,path=${ctrlPath},mode=0600`,
      '--flags', 'not-need-init,startup-clear']);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (data: Buffer) => {
      stderr += data.toString();
    });
    let why: string | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('error', (error) => {
        why = `cannot run ${SWTPM_BINARY}: ${error.message} (Debian's swtpm package: npm run setup installs it)`;
        resolve();
      });
      child.once('exit', (code, signal) => {
        why ??= `swtpm exited (${signal ?? `status ${code}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}`;
        resolve();
      });
    });
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new TpmError(`swtpm did not listen within ${SWTPM_TIMEOUT_MS / 1000} s`)), SWTPM_TIMEOUT_MS);
    void exited.then(() => abort.abort(new TpmError(why ?? 'swtpm exited')));
    const open = (path: string) => untilListening(() => new Promise<Socket>((resolve, reject) => {
      const socket = connectUnix(path);
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    }), abort.signal);
    try {
      const data = new TpmStream(await open(dataPath), (bytes) => (bytes.length >= 6 ? bytes.readUInt32BE(2) : undefined));
      // Every answer on the control channel this driver asks for is a 4-byte result.
      const ctrl = new TpmStream(await open(ctrlPath), (bytes) => (bytes.length >= 4 ? 4 : undefined));
      return new SwtpmProvisioner(child, exited, data, ctrl);
    } catch (error) {
      child.kill('SIGKILL');
      throw error instanceof TpmError ? error : new TpmError(`cannot reach swtpm: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends one TPM command; resolves to the TPM's whole response. */
  transmit(command: Buffer, what: string): Promise<Buffer> {
    return this.data.transmit(command, what);
  }

  /** Stores the TPM's volatile state (its PCRs, as started) for the swtpm QEMU will run, and ends this one. */
  async finish(): Promise<void> {
    this.data.close();
    for (const [command, what] of [[CMD_STORE_VOLATILE, 'store the TPM state'], [CMD_SHUTDOWN, 'stop swtpm']] as const) {
      const request = Buffer.alloc(4);
      request.writeUInt32BE(command);
      const result = (await this.ctrl.transmit(request, what)).readUInt32BE(0);
      if (result !== 0) throw new TpmError(`${what}: swtpm's control channel answered 0x${result.toString(16)}`, result);
    }
    this.ctrl.close();
    if (!(await Promise.race([this.exited.then(() => true), sleep(SWTPM_TIMEOUT_MS).then(() => false)]))) {
      this.kill();
      throw new TpmError(`swtpm did not stop within ${SWTPM_TIMEOUT_MS / 1000} s`);
    }
  }

  kill(): void {
    this.data.close();
    this.ctrl.close();
    this.child.kill('SIGKILL');
  }
}
