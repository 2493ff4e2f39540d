import { Command } from '@oclif/core/command';
import { allDrivers } from '../../drivers/drivers.js';
import { features } from '../../oci/features.js';

export default class Features extends Command {
  static summary = 'Print the runtime-spec features JSON: what this runtime supports, what each driver isolates, and '
    + 'which acceleration microVMs get on this host, and why.';

  async run(): Promise<void> {
    await this.parse(Features);
    const drivers = await allDrivers();
    const document = features(this.config.version, drivers.map((driver) => ({ name: driver.name, ...driver.capabilities })));
    for (const driver of drivers) Object.assign(document.annotations, driver.hostOutlook?.());
    process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
  }
}
