// The runbox CLI. runc's global flags come first; then the one command asked for is loaded (and only it:
// start-up time is paid on every container operation) and run by oclif with the config read from
// oclif.manifest.json. Help and anything unusual go through oclif's full `run`.
import { Config } from '@oclif/core/config';
import { fileURLToPath } from 'node:url';
import { CliContext, setContext } from './context.js';
import { parseGlobalOptions, type GlobalOptions } from './global-options.js';

type CommandModule = { default: { run(argv: string[], config: Config): Promise<unknown> } };

const COMMAND_LOADERS: Record<string, () => Promise<CommandModule>> = {
  bundle: () => import('./commands/bundle.js'),
  create: () => import('./commands/create.js'),
  delete: () => import('./commands/delete.js'),
  exec: () => import('./commands/exec.js'),
  features: () => import('./commands/features.js'),
  image: () => import('./commands/image.js'),
  kill: () => import('./commands/kill.js'),
  list: () => import('./commands/list.js'),
  pause: () => import('./commands/pause.js'),
  ps: () => import('./commands/ps.js'),
  resume: () => import('./commands/resume.js'),
  run: () => import('./commands/run.js'),
  spec: () => import('./commands/spec.js'),
  start: () => import('./commands/start.js'),
  state: () => import('./commands/state.js'),
};

const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // oclif decorates parse errors with usage hints over several lines; runc prints one line.
  return message.split('\n').map((line) => line.trim()).filter(Boolean).join(' ');
}

async function runCommand(rest: string[]): Promise<void> {
  const [id, ...args] = rest;
  const loader = id ? COMMAND_LOADERS[id] : undefined;
  if (!loader || args.includes('--help') || args.includes('-h')) {
    const { run } = await import('@oclif/core');
    await run(rest.length ? rest : ['--help'], PROJECT_ROOT);
    return;
  }
  const [module, config] = await Promise.all([loader(), Config.load({ root: PROJECT_ROOT, userPlugins: false, devPlugins: false, jitPlugins: false })]);
  await module.default.run(args, config);
}

export async function main(argv: string[]): Promise<number> {
  let options: GlobalOptions = { logFormat: 'text', debug: false };
  try {
    const parsed = parseGlobalOptions(argv);
    options = parsed.options;
    setContext(new CliContext(options));
    await runCommand(parsed.rest);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    const exit = (error as { oclif?: { exit?: number } }).oclif?.exit;
    if (exit === 0) return 0;
    new CliContext(options).logger.error(errorMessage(error));
    return 1;
  }
}

