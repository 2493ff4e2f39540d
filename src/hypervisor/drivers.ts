import type { Driver } from './driver.js';
import { EmulatedDriver } from './emulated-driver.js';

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
    // auto picks the strongest isolation that can run here; until a VM driver exists that is emulated.
    case 'auto':
      return new EmulatedDriver();
    case 'qemu':
      throw new Error('driver "qemu" is not available yet in this build (use emulated or auto)');
    default:
      throw new Error(`unknown driver "${name}" (expected one of ${DRIVER_NAMES.join(', ')})`);
  }
}
