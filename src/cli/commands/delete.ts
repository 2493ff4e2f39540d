import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { LIFECYCLE_OPERATIONS } from '../lifecycle-operations.js';

export default class Delete extends Command {
  static summary = 'Delete a stopped container and everything it holds; --force kills it first.';
  static args = { id: Args.string({ description: 'container id', required: true }) };
  static flags = {
    force: Flags.boolean({ char: 'f', description: 'kill the container if it is still running' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Delete);
    await LIFECYCLE_OPERATIONS.delete({ args, flags });
  }
}
