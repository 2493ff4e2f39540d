import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import { context } from '../context.js';

export default class Start extends Command {
  static summary = 'Run the program of a created container.';
  static args = { id: Args.string({ description: 'container id', required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Start);
    await context().runtime.start(args.id);
  }
}
