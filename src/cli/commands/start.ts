import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import { LIFECYCLE_OPERATIONS } from '../lifecycle-operations.js';

export default class Start extends Command {
  static summary = 'Run the program of a created container.';
  static args = { id: Args.string({ description: 'container id', required: true }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Start);
    await LIFECYCLE_OPERATIONS.start({ args, flags });
  }
}
