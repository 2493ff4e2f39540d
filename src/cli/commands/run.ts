import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { join } from 'node:path';
import { bundleFromImage } from '../../image/image-bundle.js';
import { lazyBundleFromImage, removeBundle } from '../../lazy-loader/lazy-bundle.js';
import { parseSize } from '../parse-size.js';
import { imageError, lazyFlags, openStore, platformFlag, pullFlags, registrySettings, storeFlags } from '../image-options.js';
import { cleanlyInterruptible } from '../interrupt.js';
import { lazyStartLine, PullProgress } from '../pull-progress.js';
import { runContainer } from '../run-container.js';
import { UsageError } from '../../errors/errors.js';

export default class Run extends Command {
  static summary = 'Create and start a container; in the foreground, exit with its exit status and delete it.';
  static strict = false;
  static args = { id: Args.string({ description: 'container id (with --image, then `-- ARGS…` to replace the image\'s command)', required: true }) };
  static flags = {
    bundle: Flags.string({ char: 'b', description: 'path to the bundle directory', default: '.' }),
    detach: Flags.boolean({ char: 'd', description: 'return once the container runs' }),
    'pid-file': Flags.string({ description: 'write the container process id to this file' }),
    'console-socket': Flags.string({ description: 'unix socket that receives the pty master when process.terminal is true' }),
    keep: Flags.boolean({ description: 'keep the container after it exits (foreground only)' }),
    image: Flags.string({ description: 'run this image: pull it when missing, make a bundle for the container in the store' }),
    rm: Flags.boolean({ description: 'with --image: remove the bundle made for the container when it has exited' }),
    ...storeFlags,
    ...pullFlags,
    ...lazyFlags,
  };

  /** With --image: the bundle made for `id` under the store (the image pulled first when missing). */
  private async imageBundle(id: string, flags: Awaited<ReturnType<Run['parseRun']>>['flags'], args: string[]): Promise<string> {
    const store = openStore(flags);
    const platform = platformFlag(flags.platform);
    const progress = PullProgress.forTerminal(flags.quiet);
    try {
      const dir = join(store.bundlesDir(), id);
      const pull = { ...(platform ? { platform } : {}), ...(progress ? { onEvent: progress.onEvent } : {}) };
      let served: { prefetched: number; size: number } | undefined;
      const overrides = args.length ? { overrides: { args } } : {};
      const rate = flags['lazy-background-rate'] !== undefined ? { backgroundRate: parseSize(flags['lazy-background-rate']) } : {};
      await cleanlyInterruptible((signal) => (flags.lazy
        ? lazyBundleFromImage(store, flags.image!, dir, { pull, ...overrides, registry: registrySettings(flags), ...rate, onServed: (value: { prefetched: number; size: number }) => void (served = value) })
        : bundleFromImage(store, flags.image!, dir, { pull, ...overrides, signal })))
        .catch((error: Error) => {
          throw imageError(flags.image!, error);
        })
        .finally(() => {
          progress?.finish();
          if (progress && served) process.stderr.write(lazyStartLine(flags.image!, served));
        });
      return dir;
    } finally {
      store.close();
    }
  }

  private parseRun() {
    return this.parse(Run);
  }

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parseRun();
    const id = args.id;
    const extra = (argv as string[]).slice(1);
    if (!flags.image && (extra.length || flags.rm)) throw new UsageError(extra.length ? `unexpected arguments: ${extra.join(' ')}` : '--rm needs --image');
    if (flags.rm && flags.detach) throw new UsageError('--rm cannot be used with --detach: the bundle is in use while the container runs');
    const bundle = flags.image ? await this.imageBundle(id, flags, extra) : flags.bundle;
    await runContainer(id, {
      bundle,
      ...(flags.detach ? { detach: true } : {}),
      ...(flags.keep ? { keep: true } : {}),
      ...(flags['pid-file'] ? { pidFile: flags['pid-file'] } : {}),
      ...(flags['console-socket'] ? { consoleSocket: flags['console-socket'] } : {}),
      ...(flags.image && flags.rm ? { onGone: () => removeBundle(bundle) } : {}),
    });
  }
}
