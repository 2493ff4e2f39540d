import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { execFileSync } from 'node:child_process';
import { context } from '../context.js';

export default class Ps extends Command {
  static summary = 'List the processes running in a container.';
  static args = { id: Args.string({ description: 'container id', required: true }) };
  static flags = {
    format: Flags.string({ char: 'f', options: ['table', 'json'], default: 'table', description: 'output format' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Ps);
    const pids = await context().runtime.ps(args.id);
    if (flags.format === 'json') {
      process.stdout.write(`${JSON.stringify(pids)}\n`);
      return;
    }
    if (pids.length === 0) {
      process.stdout.write('UID        PID  PPID  C STIME TTY          TIME CMD\n');
      return;
    }
    // The same table runc prints: ps -ef, for the container's pids.
    process.stdout.write(execFileSync('ps', ['-f', '-p', pids.join(',')], { encoding: 'utf8' }));
  }
}
