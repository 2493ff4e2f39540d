import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import { context } from '../context.js';

export default class State extends Command {
  static summary = 'Print the state of a container as runtime-spec JSON.';
  static args = { id: Args.string({ description: 'container id', required: true }) };

  async run(): Promise<void> {
    const { args } = await this.parse(State);
    process.stdout.write(`${JSON.stringify(context().runtime.state(args.id), null, 2)}\n`);
  }
}
