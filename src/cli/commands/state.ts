import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import { LIFECYCLE_OPERATIONS } from '../lifecycle-operations.js';

export default class State extends Command {
  static summary = 'Print the state of a container as runtime-spec JSON.';
  static args = { id: Args.string({ description: 'container id', required: true }) };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(State);
    await LIFECYCLE_OPERATIONS.state({ args, flags });
  }
}
