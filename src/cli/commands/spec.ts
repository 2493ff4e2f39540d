import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultSpec } from '../../oci/default-spec.js';
import { RuntimeError } from '../../errors/errors.js';

export default class Spec extends Command {
  static summary = 'Write a default config.json into the bundle directory.';
  static flags = {
    bundle: Flags.string({ char: 'b', description: 'bundle directory to write config.json into', default: '.' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Spec);
    const path = join(flags.bundle, 'config.json');
    if (existsSync(path)) throw new RuntimeError(`File ${path} exists. Remove it first`);
    writeFileSync(path, `${JSON.stringify(defaultSpec(), null, '\t')}\n`, { mode: 0o666 });
  }
}
