import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import { context } from '../context.js';

export default class Resume extends Command {
  static summary = 'Thaw a paused container.';
  static args = { id: Args.string({ description: 'container id', required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Resume);
    await context().runtime.resume(args.id);
  }
}
