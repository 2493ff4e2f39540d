// Each driver's module tree is loaded when that driver is asked for: a create with the emulated driver does not
// pay for evaluating the qemu driver's.
import type { Driver } from './driver.js';
import { kvmProven } from './qemu-accel.js';

export const DRIVER_NAMES = ['emulated', 'qemu', 'auto'] as const;
export type DriverName = (typeof DRIVER_NAMES)[number];

/** The annotation in config.json that picks the driver for one container; it wins over flags and env. */
export const DRIVER_ANNOTATION = 'io.runbox.driver';

/** The driver to use: the config.json annotation, else the --driver flag, else RUNBOX_DRIVER, else auto. */
export function chooseDriverName(annotation: string | undefined, flag: string | undefined): string {
  return annotation ?? flag ?? process.env.RUNBOX_DRIVER ?? 'auto';
}

export async function getDriver(name: string): Promise<Driver> {
  // auto picks the strongest isolation that runs well here: a microVM where KVM has been seen to boot one
  // (under TCG emulation a VM is opt-in: --driver qemu), else namespaces.
  const resolved = name === 'auto' ? (kvmProven() ? 'qemu' : 'emulated') : name;
  switch (resolved) {
    case 'emulated':
      return new (await import('./emulated-driver.js')).EmulatedDriver();
    case 'qemu':
      return new (await import('./qemu-driver.js')).QemuDriver();
    default:
      throw new Error(`unknown driver "${name}" (expected one of ${DRIVER_NAMES.join(', ')})`);
  }
}
