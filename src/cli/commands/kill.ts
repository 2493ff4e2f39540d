import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { LIFECYCLE_OPERATIONS } from '../lifecycle-operations.js';

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
    await LIFECYCLE_OPERATIONS.kill({ args, flags });
  }
}
