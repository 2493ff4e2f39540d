import { Command } from '@oclif/core/command';
import { EmulatedDriver } from '../../hypervisor/emulated-driver.js';
import { QemuDriver } from '../../hypervisor/qemu-driver.js';
import { features } from '../../oci/features.js';

export default class Features extends Command {
  static summary = 'Print the runtime-spec features JSON: what this runtime supports, and what each driver isolates.';

  async run(): Promise<void> {
    await this.parse(Features);
    const drivers = [new EmulatedDriver(), new QemuDriver()].map((driver) => ({ name: driver.name, ...driver.capabilities }));
    process.stdout.write(`${JSON.stringify(features(this.config.version, drivers), null, 2)}\n`);
  }
}
