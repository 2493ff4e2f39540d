import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import { RuntimeError } from '../../errors/errors.js';

const SUBCOMMANDS = ['measure'] as const;

export default class Enclave extends Command {
  static summary = 'Enclaves: `measure BUNDLE` prints the reference values of the bundle\'s enclave on this host (JSON).';
  static strict = false;
  static args = {
    command: Args.string({ description: SUBCOMMANDS.join(' | '), required: true, options: [...SUBCOMMANDS] }),
  };

  async run(): Promise<void> {
    const { argv } = await this.parse(Enclave);
    const [, bundle, ...extra] = argv as string[];
    if (!bundle || extra.length) throw new RuntimeError('enclave measure takes one argument: the bundle directory');
    const { bundleReferenceValues } = await import('../../drivers/enclave/bundle-reference-values.js');
    process.stdout.write(`${JSON.stringify(bundleReferenceValues(bundle), null, 2)}\n`);
  }
}
