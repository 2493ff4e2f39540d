import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxHandle } from '../sandbox/driver.js';
import type { Spec, Status } from '../oci/spec.js';
import { writeFileAtomic } from '../host/atomic-file.js';
import { FileLock } from '../host/file-lock.js';
import { ContainerExistsError, StateDamageError } from '../errors/errors.js';
import { parseContainerRecord } from './state-damage.js';
import { CONTAINER_LOCK_FILE, CONTAINER_STATE_FILE } from '../generated/facts.js';

/** What runbox remembers about a container between invocations (state.json in its state directory). */
export interface ContainerRecord {
  ociVersion: string;
  id: string;
  /** The status last written; `state` corrects it against the process (an exited process is stopped). */
  status: Status;
  pid: number;
  /** Start time of `pid` (see host-process.ts), so that a recycled pid is never mistaken for the container. */
  pidStartTime?: string;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations?: Record<string, string>;
  driver: string;
  sandbox?: SandboxHandle;
}

/**
 * Container state under the runtime root: `ROOT/ID/state.json` (written atomically, not flushed to disk: like
 * the containers it describes, it does not outlive a reboot), `ROOT/ID/config.json` (the
 * spec as it was at create: later edits of the bundle must not affect the container) and `ROOT/ID/lock`.
 */
export class StateStore {
  constructor(readonly root: string) {}

  dir(id: string): string {
    return join(this.root, id);
  }

  private statePath(id: string): string {
    return join(this.root, id, CONTAINER_STATE_FILE);
  }

  /** Claims an id for a new container: its directory is created exclusively and locked. */
  async reserve(id: string): Promise<FileLock> {
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    try {
      mkdirSync(this.dir(id), { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new ContainerExistsError(id);
      throw error;
    }
    return FileLock.acquire(join(this.dir(id), CONTAINER_LOCK_FILE));
  }

  /**
   * Serialises operations on one container across processes; undefined when it does not exist (a state.json that
   * cannot be read still makes a container: one that delete --force can end).
   */
  async lock(id: string): Promise<FileLock | undefined> {
    const lock = await FileLock.acquireExisting(join(this.dir(id), CONTAINER_LOCK_FILE));
    if (lock && !existsSync(this.statePath(id))) {
      lock.release();
      return undefined;
    }
    return lock;
  }

  /** The container's record; undefined when it has none; StateDamageError when its state.json cannot be used. */
  read(id: string): ContainerRecord | undefined {
    const path = this.statePath(id);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw new StateDamageError(id, path, `cannot be read (${(error as Error).message})`);
    }
    return parseContainerRecord(text, id, path) as unknown as ContainerRecord;
  }

  write(record: ContainerRecord): void {
    writeFileAtomic(this.statePath(record.id), JSON.stringify(record), 0o600, false);
  }

  writeConfig(id: string, spec: Spec): void {
    writeFileAtomic(join(this.dir(id), 'config.json'), JSON.stringify(spec), 0o600, false);
  }

  /** The spec as it was at create; StateDamageError when the copy cannot be read. */
  readConfig(id: string): Spec {
    const path = join(this.dir(id), 'config.json');
    let spec: unknown;
    try {
      spec = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new StateDamageError(id, path, `cannot be read (${(error as Error).message})`);
    }
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new StateDamageError(id, path, 'does not hold a spec');
    return spec as Spec;
  }

  /** Ids of every container that has a state directory, including those caught half-created. */
  ids(): string[] {
    try {
      return readdirSync(this.root, { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => entry.name)
        .sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  remove(id: string): void {
    rmSync(this.dir(id), { recursive: true, force: true });
  }
}
