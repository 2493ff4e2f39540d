import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { parseSignal } from '../../oci/signals.js';
import { RuntimeError } from '../../runtime/errors.js';
import { context } from '../context.js';

export default class Kill extends Command {
  static summary = 'Send a signal to a container (default SIGTERM).';
  static args = {
    id: Args.string({ description: 'container id', required: true }),
    signal: Args.string({ description: 'signal name (TERM, SIGTERM) or number', default: 'SIGTERM' }),
  };
  static flags = {
    all: Flags.boolean({ char: 'a', description: 'send the signal to every process of the container' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Kill);
    let signal: number;
    try {
      signal = parseSignal(args.signal);
    } catch (error) {
      throw new RuntimeError(`container ${args.id}: ${(error as Error).message}`);
    }
    await context().runtime.kill(args.id, signal, flags.all);
  }
}
