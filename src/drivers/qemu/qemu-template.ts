// Booting from a template: a microVM is booted once to the point where its agent is ready, and snapshotted (its
// RAM in a file, its device state in another); every later VM with the same kernel, initramfs, parameters and
// size is that snapshot restored, with the RAM file mapped copy-on-write, instead of a guest booted again. This
// is the template store: which template fits a VM, where it lives, building one at most once at a time, and
// dropping the ones nothing can use any more. The snapshot itself is the driver's (qemu-driver.ts).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { FileLock } from '../../host/file-lock.js';
import type { Accel } from './qemu-accel.js';
import { isProcessAlive, killProcessesUnder, processStartTime } from '../../host/host-process.js';
import type { VmResources } from './qemu-resources.js';
import { SandboxError } from '../../errors/errors.js';

/** The annotation (else RUNBOX_QEMU_TEMPLATE) that turns templates off for one container: `off`, or `on`. */
export const TEMPLATE_ANNOTATION = 'io.runbox.qemu.template';
/** On /run (tmpfs): a template's RAM file is read at every clone's page fault, and gone at the host's reboot. */
export const DEFAULT_TEMPLATE_DIR = '/run/runbox-qemu/templates';
/** Templates kept, the most recently used first: each holds up to its VM's memory in the template dir. */
export const MAX_TEMPLATES = 4;
/**
 * Part of every key: raise it when what a template holds changes in a way its inputs do not show (the devices
 * QEMU is given, or what the host does to a template before it is snapshotted).
 */
const LAYOUT_VERSION = 1;

export function templatesEnabled(annotation: string | undefined): boolean {
  const value = (annotation ?? process.env.RUNBOX_QEMU_TEMPLATE ?? 'on').trim();
  if (value !== 'on' && value !== 'off') throw new SandboxError(`invalid ${TEMPLATE_ANNOTATION} "${value}" (expected on or off)`);
  return value === 'on';
}

/** What a template's guest is made of: a VM fits a template when all of it is the same. */
export interface TemplateInputs {
  qemu: string;
  kernel: string;
  initrd: string;
  cmdline: string[];
  accel: Accel;
  resources: VmResources;
  agentPorts: number;
}

/** A built template: restore `state` with `ram` mapped privately. */
export interface VmTemplate {
  key: string;
  dir: string;
  ram: string;
  state: string;
}

interface FileIdentity {
  path: string;
  /** size, mtime and inode: a rebuilt or replaced file changes at least one of them */
  id: string;
}

interface TemplateMeta {
  files: FileIdentity[];
}

function fileIdentity(path: string): FileIdentity {
  try {
    const stat = statSync(path);
    return { path, id: `${stat.size}:${stat.mtimeMs}:${stat.ino}` };
  } catch {
    return { path, id: 'missing' };
  }
}

/** The file a command name runs, as the shell would find it on PATH. */
function onPath(command: string): string {
  if (command.includes('/')) return command;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir || '.', command);
    try {
      if (statSync(path).isFile()) return path;
    } catch {
      // not in this one
    }
  }
  return command;
}

/** Removes a lock file nobody holds (a builder that failed or died leaves one with no template beside it). */
function removeIdleLock(path: string): void {
  if (!existsSync(path)) return;
  const lock = FileLock.tryAcquire(path);
  if (!lock) return; // held: a builder is at work
  rmSync(path, { force: true });
  lock.release();
}

/** Where templates are kept; one directory per key, built beside it under a name of its own and renamed in. */
export class TemplateStore {
  constructor(
    /** The VM's program: what a dead builder's VM is found by. */
    private readonly vmCommand: string,
    readonly root = resolve(process.env.RUNBOX_QEMU_TEMPLATE_DIR ?? DEFAULT_TEMPLATE_DIR),
  ) {}

  /** The key of the template that fits these inputs, and the files it depends on. */
  describe(inputs: TemplateInputs): { key: string; meta: TemplateMeta } {
    const files = [onPath(inputs.qemu), inputs.kernel, inputs.initrd].map(fileIdentity);
    const { cmdline, accel, resources, agentPorts } = inputs;
    const text = JSON.stringify({ LAYOUT_VERSION, files, cmdline, accel, resources, agentPorts });
    // Short: the key names a directory that holds unix sockets while the template is built (108-byte paths).
    return { key: createHash('sha256').update(text).digest('hex').slice(0, 24), meta: { files } };
  }

  private templateAt(key: string): VmTemplate {
    const dir = join(this.root, key);
    return { key, dir, ram: join(dir, 'ram'), state: join(dir, 'state') };
  }

  /** The template for these inputs if it has been built; marks it used. */
  find(key: string): VmTemplate | undefined {
    const template = this.templateAt(key);
    try {
      const now = new Date();
      utimesSync(template.dir, now, now);
      return template;
    } catch {
      return undefined;
    }
  }

  /**
   * The template for these inputs: found, or built by `build` into a fresh directory, once, whoever else asks at
   * the same time (they wait for it). `build` fills the directory with `ram` and `state` or throws; then nothing of
   * it is left. Where no template can be kept (no room, no writable directory) it throws an error with an errno
   * `code`.
   */
  async obtain(inputs: TemplateInputs, build: (dir: string) => Promise<void>): Promise<VmTemplate> {
    const { key, meta } = this.describe(inputs);
    const found = this.find(key);
    if (found) return found;
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const lock = await FileLock.acquire(join(this.root, `${key}.lock`));
    try {
      const builtMeanwhile = this.find(key);
      if (builtMeanwhile) return builtMeanwhile;
      // The template's guest writes its RAM into the file: on a full filesystem (a small /run tmpfs) QEMU would
      // die of SIGBUS mid-boot. Without room for all of it, VMs boot instead.
      const { bavail, bsize } = statfsSync(this.root);
      const needed = inputs.resources.memoryMib * 2 ** 20;
      if (bavail * bsize < needed) {
        throw Object.assign(new Error(`no room for a ${inputs.resources.memoryMib} MiB template in ${this.root}`), { code: 'ENOSPC' });
      }
      this.prune(); // a builder that died before may have left its VM running
      const building = join(this.root, `.build-${process.pid}-${processStartTime(process.pid) ?? 0}`);
      rmSync(building, { recursive: true, force: true });
      mkdirSync(building, { mode: 0o700 });
      try {
        await build(building);
        writeFileSync(join(building, 'meta.json'), JSON.stringify(meta), { mode: 0o600 });
        try {
          renameSync(building, this.templateAt(key).dir);
        } catch (error) {
          // Another builder got there first (one that took the lock file just before a prune replaced it).
          const code = (error as NodeJS.ErrnoException).code;
          if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
          rmSync(building, { recursive: true, force: true });
        }
      } catch (error) {
        rmSync(building, { recursive: true, force: true });
        throw error;
      }
      this.prune(key);
      return this.templateAt(key);
    } finally {
      lock.release();
    }
  }

  /** Drops a template that could not be restored: the next VM that needs it builds it again. */
  discard(key: string): void {
    rmSync(this.templateAt(key).dir, { recursive: true, force: true });
  }

  /**
   * Removes what nothing can use: templates whose files changed or went (a rebuilt initramfs, a new kernel), the
   * least recently used beyond MAX_TEMPLATES, and the build directories of builders that died. A VM restored
   * from a removed template keeps running: its RAM file stays mapped.
   */
  prune(keep?: string): void {
    let entries: string[];
    try {
      entries = readdirSync(this.root);
    } catch {
      return;
    }
    const live: Array<{ key: string; used: number }> = [];
    for (const entry of entries) {
      const path = join(this.root, entry);
      const builder = /^\.build-(\d+)-(\d+)$/.exec(entry);
      if (builder) {
        // Its template VM may live on (one it had stopped to snapshot would never power itself off).
        if (!isProcessAlive(Number(builder[1]), builder[2])) {
          killProcessesUnder(this.vmCommand, path);
          rmSync(path, { recursive: true, force: true });
        }
        continue;
      }
      if (entry.endsWith('.lock')) {
        if (!entries.includes(entry.slice(0, -'.lock'.length))) removeIdleLock(path);
        continue;
      }
      if (entry === keep) continue;
      try {
        const meta = JSON.parse(readFileSync(join(path, 'meta.json'), 'utf8')) as TemplateMeta;
        if (meta.files.some((file) => fileIdentity(file.path).id !== file.id)) throw new Error('stale');
        live.push({ key: entry, used: statSync(path).mtimeMs });
      } catch {
        rmSync(path, { recursive: true, force: true });
        removeIdleLock(`${path}.lock`);
      }
    }
    live.sort((a, b) => b.used - a.used);
    for (const { key } of live.slice(keep ? MAX_TEMPLATES - 1 : MAX_TEMPLATES)) {
      this.discard(key);
      removeIdleLock(join(this.root, `${key}.lock`));
    }
  }
}
