import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import type { ImageRecord } from '../../image/image-index.js';
import { convertToEstargz } from '../../image/lazy/estargz-convert.js';
import { lazyFlags, openStore, platformFlag, pullFlags, registrySettings, storeFlags } from '../image-options.js';
import { optimizeImage } from '../../lazy-loader/lazy-optimize.js';
import { followStats, imageStats, statsTable } from '../lazy-stats.js';
import { formatBytes, PullProgress } from '../pull-progress.js';
import { ImageNotFoundError, UsageError } from '../../errors/errors.js';

const SUBCOMMANDS = ['pull', 'ls', 'rm', 'prune', 'convert', 'optimize', 'stats'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

function summary(record: ImageRecord): Record<string, unknown> {
  return { name: record.name, digest: record.digest, manifest: record.manifest, config: record.config.digest, platform: record.platform, size: record.size, layers: record.layers.length, pulled: record.pulled, lastUsed: record.lastUsed };
}

export default class Image extends Command {
  static summary = 'Manage images: pull REF…, ls, rm REF…, prune, convert --estargz SRC DST, optimize SRC DST [-- ARGS], stats REF.';
  static strict = false;
  static args = {
    command: Args.string({ description: 'pull | ls | rm | prune | convert | optimize | stats', required: true, options: [...SUBCOMMANDS] }),
  };
  static flags = {
    ...storeFlags,
    ...pullFlags,
    lazy: lazyFlags.lazy,
    follow: Flags.boolean({ description: 'stats: redraw on the terminal until the background fetch is done' }),
    period: Flags.integer({ description: 'optimize: seconds the workload may run before it is stopped', default: 10, min: 1 }),
    estargz: Flags.boolean({ description: 'convert: write the layers as eStargz (lazily loadable, still gzip tar layers)' }),
    format: Flags.string({ description: 'output format', options: ['table', 'json'], default: 'table' }),
  };

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(Image);
    const subcommand = args.command as Subcommand;
    const refs = (argv as string[]).slice(1);
    const store = openStore(flags);
    const json = flags.format === 'json';
    try {
      switch (subcommand) {
        case 'pull': {
          if (refs.length === 0) throw new UsageError('image pull needs at least one image reference');
          const platform = platformFlag(flags.platform);
          const pulled: ImageRecord[] = [];
          for (const ref of refs) {
            const progress = json ? undefined : PullProgress.forTerminal(flags.quiet);
            try {
              pulled.push(await store.pull(ref, { ...(platform ? { platform } : {}), ...(progress ? { onEvent: progress.onEvent } : {}), ...(flags.lazy ? { lazy: true } : {}) }));
            } finally {
              progress?.finish();
            }
            if (!json && !flags.quiet) this.log(`${pulled.at(-1)!.name}: ${pulled.at(-1)!.digest}`);
          }
          if (json) this.log(JSON.stringify(pulled.map(summary)));
          break;
        }
        case 'ls': {
          const records = store.list();
          if (json) this.log(JSON.stringify(records.map(summary)));
          else {
            this.log(['NAME', 'DIGEST', 'PLATFORM', 'SIZE'].join('\t'));
            for (const record of records) this.log([record.name, record.digest, record.platform, formatBytes(record.size)].join('\t'));
          }
          break;
        }
        case 'rm': {
          if (refs.length === 0) throw new UsageError('image rm needs at least one image reference');
          const removed = await store.remove(refs);
          if (json) this.log(JSON.stringify(removed.map(summary)));
          else if (!flags.quiet) for (const record of removed) this.log(`removed ${record.name}`);
          break;
        }
        case 'convert': {
          if (refs.length !== 2) throw new UsageError('image convert needs SRC and DST');
          if (!flags.estargz) throw new UsageError('image convert needs the format to convert to: --estargz');
          const converted = await convertToEstargz(store, refs[0]!, refs[1]!);
          if (json) this.log(JSON.stringify(summary(converted)));
          else if (!flags.quiet) this.log(`${converted.name}: ${converted.digest}`);
          break;
        }
        case 'optimize': {
          if (refs.length < 2) throw new UsageError('image optimize needs SRC and DST (then -- ARGS for the workload)');
          const { image } = await optimizeImage(store, refs[0]!, refs[1]!, {
            args: refs.slice(2),
            periodMs: flags.period * 1000,
            registry: registrySettings(flags),
            scratchStore: (dir) => openStore({ ...flags, store: dir, quota: undefined }),
          });
          if (json) this.log(JSON.stringify(summary(image)));
          else if (!flags.quiet) this.log(`${image.name}: ${image.digest}`);
          break;
        }
        case 'stats': {
          if (refs.length !== 1) throw new UsageError('image stats needs one image reference');
          const image = store.find(refs[0]!);
          if (!image) throw new ImageNotFoundError(`image ${refs[0]}: not in the store`);
          if (!image.lazy) throw new UsageError(`image ${image.name}: not pulled lazily (image pull --lazy)`);
          if (flags.follow && !json && process.stdout.isTTY) {
            await followStats(store.dir, image, process.stdout);
            break;
          }
          const stats = await imageStats(store.dir, image);
          if (json) this.log(JSON.stringify(stats ?? null));
          else if (!stats) this.log(`${image.name}: nothing fetched lazily yet`);
          else for (const line of statsTable(stats)) this.log(line);
          break;
        }
        case 'prune': {
          const freed = await store.collect();
          if (json) this.log(JSON.stringify({ freed }));
          else if (!flags.quiet) this.log(`freed ${formatBytes(freed)}`);
          break;
        }
      }
    } finally {
      store.close();
    }
  }
}
