import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { context } from '../context.js';

export default class List extends Command {
  static summary = 'List the containers under the state root.';
  static flags = {
    format: Flags.string({ char: 'f', options: ['table', 'json'], default: 'table', description: 'output format' }),
    quiet: Flags.boolean({ char: 'q', description: 'print ids only' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(List);
    const states = context().runtime.list();
    if (flags.quiet) {
      process.stdout.write(states.map((s) => `${s.id}\n`).join(''));
    } else if (flags.format === 'json') {
      process.stdout.write(`${JSON.stringify(states)}\n`);
    } else {
      const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER']];
      for (const s of states) rows.push([s.id, String(s.pid ?? 0), s.status, s.bundle, s.created, s.owner]);
      const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      process.stdout.write(rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('   ').trimEnd()).join('\n') + '\n');
    }
  }
}
