// The runbox CLI on oclif. runc's global flags come first; then the one command asked for is loaded (and only
// it) and run by oclif with the config read from oclif.manifest.json. Help and unknown commands go through
// oclif's full `run`. Plain lifecycle calls never get here (lifecycle-main.ts runs them without oclif).
import type { Config } from '@oclif/core/config';
import { parseGlobalOptions, type GlobalOptions } from './global-options.js';
import { PROJECT_ROOT } from '../host/install-paths.js';
import { reportError, runReported } from './run-reported.js';

type CommandModule = { default: { run(argv: string[], config: Config): Promise<unknown> } };

const COMMAND_LOADERS: Record<string, () => Promise<CommandModule>> = {
  bundle: () => import('./commands/bundle.js'),
  create: () => import('./commands/create.js'),
  delete: () => import('./commands/delete.js'),
  enclave: () => import('./commands/enclave.js'),
  exec: () => import('./commands/exec.js'),
  features: () => import('./commands/features.js'),
  image: () => import('./commands/image.js'),
  kill: () => import('./commands/kill.js'),
  list: () => import('./commands/list.js'),
  pause: () => import('./commands/pause.js'),
  pool: () => import('./commands/pool.js'),
  ps: () => import('./commands/ps.js'),
  resume: () => import('./commands/resume.js'),
  run: () => import('./commands/run.js'),
  spec: () => import('./commands/spec.js'),
  start: () => import('./commands/start.js'),
  state: () => import('./commands/state.js'),
  update: () => import('./commands/update.js'),
};

async function runCommand(rest: string[]): Promise<void> {
  const [id, ...args] = rest;
  const loader = id ? COMMAND_LOADERS[id] : undefined;
  if (!loader || args.includes('--help') || args.includes('-h')) {
    const { run } = await import('@oclif/core');
    await run(rest.length ? rest : ['--help'], PROJECT_ROOT);
    return;
  }
  const [module, config] = await Promise.all([
    loader(),
    import('@oclif/core/config').then(({ Config }) => Config.load({ root: PROJECT_ROOT, userPlugins: false, devPlugins: false, jitPlugins: false })),
  ]);
  await module.default.run(args, config);
}

export async function main(argv: string[]): Promise<number> {
  let options: GlobalOptions = { logFormat: 'text', debug: false };
  let rest: string[];
  try {
    ({ options, rest } = parseGlobalOptions(argv));
  } catch (error) {
    return reportError(options, error);
  }
  return runReported(options, () => runCommand(rest));
}
