import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { resolve } from 'node:path';
import { createBundle } from '../../image/image-bundle.js';
import { openStore, platformFlag, pullFlags, storeFlags } from '../image-options.js';
import { PullProgress } from '../pull-progress.js';

export default class Bundle extends Command {
  static summary = 'Make an OCI bundle (rootfs and config.json) from an image, pulling it when missing.';
  static strict = false;
  static args = { dir: Args.string({ description: 'bundle directory (absent or empty)', required: true }) };
  static flags = {
    ...storeFlags,
    ...pullFlags,
    image: Flags.string({ description: 'image reference', required: true }),
  };

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(Bundle);
    const extra = (argv as string[]).slice(1);
    const store = openStore(flags);
    const platform = platformFlag(flags.platform);
    const progress = PullProgress.forTerminal(flags.quiet);
    try {
      const image = await store.obtain(flags.image, { ...(platform ? { platform } : {}), ...(progress ? { onEvent: progress.onEvent } : {}) }).finally(() => progress?.finish());
      await createBundle(store, image, resolve(args.dir), extra.length ? { args: extra } : {}).catch((error: Error) => {
        throw new Error(`image ${image.name}: ${error.message}`);
      });
    } finally {
      store.close();
    }
  }
}
