import { Command } from '@oclif/core/command';
import { EmulatedDriver } from '../../hypervisor/emulated-driver.js';
import { accelOutlook } from '../../hypervisor/qemu-accel.js';
import { QemuDriver } from '../../hypervisor/qemu-driver.js';
import { features } from '../../oci/features.js';

export default class Features extends Command {
  static summary = 'Print the runtime-spec features JSON: what this runtime supports, what each driver isolates, and '
    + 'which acceleration microVMs get on this host, and why.';

  async run(): Promise<void> {
    await this.parse(Features);
    const drivers = [new EmulatedDriver(), new QemuDriver()].map((driver) => ({ name: driver.name, ...driver.capabilities }));
    const document = features(this.config.version, drivers);
    const accel = accelOutlook();
    document.annotations['io.runbox.driver.qemu.accel'] = accel.accel;
    document.annotations['io.runbox.driver.qemu.accel.why'] = accel.why;
    process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
  }
}
