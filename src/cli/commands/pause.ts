import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import { context } from '../context.js';

export default class Pause extends Command {
  static summary = 'Freeze every process of a container.';
  static args = { id: Args.string({ description: 'container id', required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Pause);
    await context().runtime.pause(args.id);
  }
}
