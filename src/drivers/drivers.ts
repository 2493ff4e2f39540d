// Each driver's module tree is loaded when that driver is asked for: a create with the emulated driver does not
// pay for evaluating the qemu driver's.
import type { Driver, DriverRegistry } from '../sandbox/driver.js';
import { kvmProven } from './qemu/qemu-accel.js';
import { SandboxError } from '../errors/errors.js';

export const DRIVER_NAMES = ['emulated', 'qemu', 'enclave', 'auto'] as const;
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
      return new (await import('./emulated/emulated-driver.js')).EmulatedDriver();
    case 'qemu':
      return new (await import('./qemu/qemu-driver.js')).QemuDriver();
    case 'enclave':
      return new (await import('./enclave/enclave-driver.js')).EnclaveDriver();
    default:
      throw new SandboxError(`unknown driver "${name}" (expected one of ${DRIVER_NAMES.join(', ')})`);
  }
}

/** One of each concrete driver (not `auto`), in DRIVER_NAMES's order. */
export async function allDrivers(): Promise<Driver[]> {
  return Promise.all(DRIVER_NAMES.filter((name) => name !== 'auto').map((name) => getDriver(name)));
}

/**
 * Asks every driver to end what a sandbox left in its directory when the record of it is missing or cannot be
 * read (Driver.abandonedBoot); what a driver could not end is told to `warn`, and the next driver still asked.
 */
export async function endAbandonedSandboxes(dir: string, warn: (message: string) => void): Promise<void> {
  for (const driver of await allDrivers()) {
    try {
      await driver.abandonedBoot?.(dir);
    } catch (error) {
      warn(`cleaning up the sandbox directory ${dir}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

/** The drivers of this project, as the runtime and the shim take them. */
export const driverRegistry: DriverRegistry = {
  forSpec: (annotations, choice) => getDriver(chooseDriverName(annotations?.[DRIVER_ANNOTATION], choice)),
  named: getDriver,
  endAbandoned: endAbandonedSandboxes,
  // Loaded on demand, as the drivers are: a process that restored a VM ahead of need has it loaded already.
  sandboxBooted: () => void import('./qemu/vm-reserve.js').then(({ discardReserve }) => discardReserve()),
};
