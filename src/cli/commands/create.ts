import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { LIFECYCLE_OPERATIONS } from '../lifecycle-operations.js';

export default class Create extends Command {
  static summary = 'Create a container from an OCI bundle; its program runs on start.';
  static args = { id: Args.string({ description: 'container id', required: true }) };
  static flags = {
    bundle: Flags.string({ char: 'b', description: 'path to the bundle directory (default: the current directory)', default: '.' }),
    'pid-file': Flags.string({ description: 'write the container process id to this file' }),
    'console-socket': Flags.string({ description: 'unix socket that receives the pty master when process.terminal is true' }),
    'no-pivot': Flags.boolean({ hidden: true }),
    'no-new-keyring': Flags.boolean({ hidden: true }),
    'preserve-fds': Flags.integer({ hidden: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Create);
    await LIFECYCLE_OPERATIONS.create({ args, flags: { ...flags, 'preserve-fds': undefined } });
  }
}
