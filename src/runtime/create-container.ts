// runc's `create`: the bundle's config.json checked, the container recorded under its lock, a sandbox booted
// and recorded at once (a CLI killed from then on leaves what delete can end), the init created up to its hooks.
// A create that fails ends whatever it made and leaves no record.
import { resolve } from 'node:path';
import { detailFor, RuntimeError, SpecError } from '../errors/errors.js';
import { writeFileAtomic } from '../host/atomic-file.js';
import { loadSpec } from '../oci/load-spec.js';
import { OCI_VERSION, type Spec } from '../oci/spec.js';
import type { Driver, ProcessOutput, RunningProcess, Sandbox, StdioMode } from '../sandbox/driver.js';
import { createStopsForHooks, passCreateHookPoint, sandboxHooksNeedState } from './hooks.js';
import type { RuntimeContext } from './runtime-context.js';
import { rfc3339Nano, stateReport } from './state-report.js';
import type { ContainerRecord } from './state-store.js';

export interface CreateOptions {
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  /** Where the container's stdio goes when it has no terminal: this process's own (runc's way), or nowhere. */
  stdio?: 'inherit' | 'null';
  /** For a terminal without a console socket (a foreground run): the pty is relayed through this process. */
  relayTerminal?: ProcessOutput;
  /**
   * A detached create, as runc does it: the init (and later detached execs) become children of this process,
   * reaped by the caller's subreaper once it exits (see SandboxConfig.callerReaps). Nobody can wait for the
   * exit status through runbox then; `state` still tells when the process has exited.
   */
  callerReaps?: boolean;
}

/** A container created with a relayed terminal: the connection that carries its pty stays open. */
export interface Relay {
  sandbox: Sandbox;
  process: RunningProcess;
}

function bundleSpec(bundle: string): Spec {
  try {
    return loadSpec(bundle);
  } catch (error) {
    if (error instanceof SpecError) throw new RuntimeError(error.message, { cause: error });
    throw error;
  }
}

export async function createContainer(context: RuntimeContext, id: string, options: CreateOptions): Promise<{ record: ContainerRecord; relay?: Relay }> {
  const { store, logger } = context;
  const bundle = resolve(options.bundle);
  const spec = bundleSpec(bundle);
  const process = spec.process!;
  const relayOutput = process.terminal && !options.consoleSocket ? options.relayTerminal : undefined;
  if (process.terminal && !options.consoleSocket && !relayOutput) {
    throw new RuntimeError('cannot allocate tty if runbox will detach without setting console socket', { containerId: id });
  }
  if (!process.terminal && options.consoleSocket) {
    throw new RuntimeError('cannot use console socket if runbox will not detach or allocate tty', { containerId: id });
  }
  const driver = await context.driverForSpec(spec, id);

  const record: ContainerRecord = {
    ociVersion: spec.ociVersion || OCI_VERSION,
    id,
    status: 'creating',
    pid: 0,
    bundle,
    rootfs: spec.root!.path,
    created: rfc3339Nano(),
    owner: '',
    annotations: spec.annotations ?? {},
    // The driver that runs it, resolved: `auto` may mean something else by the time the container is deleted.
    driver: driver.name,
  };
  refuseOversizedHookState(record, spec, driver);

  const lock = await store.reserve(id);
  let sandbox: Sandbox | undefined;
  let hooksBegun = false;
  try {
    store.writeConfig(id, spec);
    store.write(record);
    sandbox = await driver.boot({
      id,
      dir: store.dir(id),
      stdio: process.terminal ? 'null' : (options.stdio ?? 'inherit'),
      spec,
      bundle,
      ...(options.callerReaps ? { callerReaps: true } : {}),
      log: (message) => logger.warn(`container ${id}: ${message}`),
    });
    record.sandbox = sandbox.handle;
    // Recorded at once: a CLI killed from here on leaves a sandbox that delete can find and end. Until the
    // sandbox is told, it ends with this process.
    store.write(record);
    // The sandbox takes requests in order: the create follows this one without waiting for its answer.
    const recorded = sandbox.recorded();
    recorded.catch(() => {});
    logger.debug(`container ${id}: ${driver.name} sandbox booted: ${JSON.stringify(sandbox.handle)}`);
    const stdio: StdioMode = process.terminal ? (options.consoleSocket ? 'null' : 'stream') : (options.stdio ?? 'inherit');
    const stopsForHooks = createStopsForHooks(spec.hooks);
    const creating = sandbox.createContainer(
      { id, bundle, spec, stdio, ...(options.consoleSocket ? { consoleSocket: resolve(options.consoleSocket) } : {}), finish: !stopsForHooks },
      relayOutput,
    );
    creating.catch(() => {});
    await recorded;
    const init = await creating;
    record.pid = init.pid;
    record.pidStartTime = context.processes.startTime(init.pid);
    if (stopsForHooks) {
      logger.debug(`container ${id}: init process ${init.pid} ready for the create hooks`);
      store.write(record);
      hooksBegun = true;
      await passCreateHookPoint(sandbox, id, spec.hooks, JSON.stringify(stateReport(record, 'creating')));
    }

    record.status = 'created';
    store.write(record);
    if (options.pidFile) writeFileAtomic(resolve(options.pidFile), String(record.pid), 0o644, false);
    if (!relayOutput) return { record };
    const relay = { sandbox, process: init };
    sandbox = undefined;
    return { record, relay };
  } catch (error) {
    await undoCreate(context, record, driver, sandbox, hooksBegun ? spec : undefined);
    throw new RuntimeError(detailFor(error, id), { containerId: id, cause: error });
  } finally {
    sandbox?.disconnect();
    lock.release();
  }
}

/** A state JSON the sandbox's hooks could not be given refuses the create before anything is made. */
function refuseOversizedHookState(record: ContainerRecord, spec: Spec, driver: Driver): void {
  if (!sandboxHooksNeedState(spec.hooks)) return;
  // The pid is not known yet: room for the longest one.
  const bytes = Buffer.byteLength(JSON.stringify(stateReport(record, 'created'))) + String(2 ** 22).length;
  const limit = driver.capabilities.hookStateLimit;
  if (bytes > limit) {
    throw new RuntimeError(
      `the state its createContainer and startContainer hooks would be given is ${bytes} bytes ` +
      `(the annotations are in it), more than the ${driver.name} driver carries to them (${limit})`,
      { containerId: record.id },
    );
  }
}

async function undoCreate(context: RuntimeContext, record: ContainerRecord, driver: Driver, sandbox: Sandbox | undefined, spec: Spec | undefined) {
  try {
    if (sandbox) await sandbox.destroy();
    else if (record.sandbox) await driver.cleanup(record.sandbox);
  } catch (error) {
    context.logger.warn(`container ${record.id}: cleaning up after a failed create: ${detailFor(error, record.id)}`);
  }
  context.killLeftover(record);
  if (spec) await context.runPoststop(record, spec);
  context.store.remove(record.id);
}
