import type { Sandbox } from '../sandbox/driver.js';
import type { Hook, HookName, Hooks } from '../oci/spec.js';
import { RuntimeError } from '../errors/errors.js';

const OUTPUT_LIMIT = 4096;

/**
 * Whether a create must stop at the hook point (native/agent/PROTOCOL.md, `create` then `finish_create`): a hook runs
 * there, or poststop hooks would have to run for a create that fails after it. Otherwise the agent finishes the
 * create at once, a round trip less.
 */
export function createStopsForHooks(hooks: Hooks | undefined): boolean {
  return Boolean(hooks?.prestart?.length || hooks?.createRuntime?.length || hooks?.createContainer?.length || hooks?.poststop?.length);
}

/**
 * Runs one hook in the runtime's namespace as config.md says: args as argv (args[0] is argv[0]), exactly the
 * env it lists, the container state JSON on stdin, killed after `timeout` seconds.
 */
export async function runHook(name: HookName, hook: Hook, stateJson: string): Promise<void> {
  // Loaded here, not at start-up: most containers have no hooks.
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const [argv0, ...args] = hook.args?.length ? hook.args : [hook.path];
    const env: Record<string, string> = {};
    for (const entry of hook.env ?? []) {
      const eq = entry.indexOf('=');
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    const child = spawn(hook.path, args, { argv0: argv0!, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      if (output.length < OUTPUT_LIMIT) output += chunk.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.stdin.on('error', () => {
      // A hook that does not read its stdin is fine.
    });
    child.stdin.end(stateJson);
    let timedOut = false;
    const timer = hook.timeout
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, hook.timeout * 1000)
      : undefined;
    const fail = (what: string) => {
      const detail = output.trim() ? `: ${output.trim().slice(0, OUTPUT_LIMIT)}` : '';
      reject(new RuntimeError(`${name} hook ${hook.path} ${what}${detail}`));
    };
    child.on('error', (error) => {
      clearTimeout(timer);
      fail(`could not run: ${error.message}`);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return fail(`timed out after ${hook.timeout} s`);
      if (code === 0) return resolve();
      fail(signal ? `was killed by ${signal}` : `exited with status ${code}`);
    });
  });
}

/** Runs every hook of one kind in order; the first failure stops the rest. */
async function runHooks(name: HookName, hooks: Hook[] | undefined, stateJson: string): Promise<void> {
  for (const hook of hooks ?? []) await runHook(name, hook, stateJson);
}

/**
 * A create's hook point, where it stops there (createStopsForHooks): the runtime's prestart and createRuntime
 * hooks, then the sandbox finishes the create (its createContainer hooks, pivot_root and the rest).
 */
export async function passCreateHookPoint(sandbox: Pick<Sandbox, 'finishCreate'>, id: string, hooks: Hooks | undefined, state: string): Promise<void> {
  await runHooks('prestart', hooks?.prestart, state);
  await runHooks('createRuntime', hooks?.createRuntime, state);
  await sandbox.finishCreate(id, hooks?.createContainer?.length ? state : undefined);
}

/** Whether the sandbox runs hooks that read the state JSON: it is carried to them, and must fit (hookStateLimit). */
export function sandboxHooksNeedState(hooks: Hooks | undefined): boolean {
  return Boolean(hooks?.createContainer?.length || hooks?.startContainer?.length);
}

/** For poststart and poststop: every hook runs, and each failure is only reported (runtime.md). */
export async function runHooksReportingFailures(
  name: HookName, hooks: Hook[] | undefined, stateJson: string, report: (error: Error) => void,
): Promise<void> {
  for (const hook of hooks ?? []) {
    try {
      await runHook(name, hook, stateJson);
    } catch (error) {
      report(error as Error);
    }
  }
}
