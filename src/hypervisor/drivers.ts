import type { Driver } from './driver.js';
import { EmulatedDriver } from './emulated-driver.js';
import { kvmProven } from './qemu-accel.js';
import { QemuDriver } from './qemu-driver.js';

export const DRIVER_NAMES = ['emulated', 'qemu', 'auto'] as const;
export type DriverName = (typeof DRIVER_NAMES)[number];

/** The annotation in config.json that picks the driver for one container; it wins over flags and env. */
export const DRIVER_ANNOTATION = 'io.runbox.driver';

/** The driver to use: the config.json annotation, else the --driver flag, else RUNBOX_DRIVER, else auto. */
export function chooseDriverName(annotation: string | undefined, flag: string | undefined): string {
  return annotation ?? flag ?? process.env.RUNBOX_DRIVER ?? 'auto';
}

export function getDriver(name: string): Driver {
  switch (name) {
    case 'emulated':
      return new EmulatedDriver();
    // auto picks the strongest isolation that runs well here: a microVM where KVM has been seen to boot one
    // (under TCG emulation a VM is opt-in: --driver qemu), else namespaces.
    case 'auto':
      return kvmProven() ? new QemuDriver() : new EmulatedDriver();
    case 'qemu':
      return new QemuDriver();
    default:
      throw new Error(`unknown driver "${name}" (expected one of ${DRIVER_NAMES.join(', ')})`);
  }
}
