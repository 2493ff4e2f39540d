import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { resolve } from 'node:path';
import { bundleFromImage } from '../../image/image-bundle.js';
import { lazyBundleFromImage } from '../../lazy-loader/lazy-bundle.js';
import { parseSize } from '../parse-size.js';
import { imageError, lazyFlags, openStore, platformFlag, pullFlags, registrySettings, storeFlags } from '../image-options.js';
import { cleanlyInterruptible } from '../interrupt.js';
import { lazyStartLine, PullProgress } from '../pull-progress.js';

export default class Bundle extends Command {
  static summary = 'Make an OCI bundle (rootfs and config.json) from an image, pulling it when missing.';
  static strict = false;
  static args = { dir: Args.string({ description: 'bundle directory (absent or empty)', required: true }) };
  static flags = {
    ...storeFlags,
    ...pullFlags,
    ...lazyFlags,
    image: Flags.string({ description: 'image reference', required: true }),
  };

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(Bundle);
    const extra = (argv as string[]).slice(1);
    const store = openStore(flags);
    const platform = platformFlag(flags.platform);
    const progress = PullProgress.forTerminal(flags.quiet);
    try {
      const pull = { ...(platform ? { platform } : {}), ...(progress ? { onEvent: progress.onEvent } : {}) };
      let served: { prefetched: number; size: number } | undefined;
      const overrides = extra.length ? { overrides: { args: extra } } : {};
      const rate = flags['lazy-background-rate'] !== undefined ? { backgroundRate: parseSize(flags['lazy-background-rate']) } : {};
      await cleanlyInterruptible((signal) => (flags.lazy
        ? lazyBundleFromImage(store, flags.image, resolve(args.dir), { pull, ...overrides, registry: registrySettings(flags), ...rate, onServed: (value: { prefetched: number; size: number }) => void (served = value) })
        : bundleFromImage(store, flags.image, resolve(args.dir), { pull, ...overrides, signal })))
        .catch((error: Error) => {
          throw imageError(flags.image, error);
        })
        .finally(() => {
          progress?.finish();
          if (progress && served) process.stderr.write(lazyStartLine(flags.image, served));
        });
    } finally {
      store.close();
    }
  }
}
