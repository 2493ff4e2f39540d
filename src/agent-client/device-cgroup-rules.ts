// linux.resources.devices reduced to what the cgroup v1 devices controller holds once the rules are written in
// order, as runc's devices emulator reduces them: a default (allow or deny) and the devices excepted from it, each
// with its access. cgroup v1 is given that list; on cgroup v2 the agent makes it an eBPF device program.
import type { LinuxDeviceRule } from '../oci/linux-resources.js';
import { SpecError } from '../errors/errors.js';

export type DeviceNumber = number | '*';

export interface DeviceException {
  type: 'c' | 'b';
  major: DeviceNumber;
  minor: DeviceNumber;
  /** A non-empty subset of `rwm`, in that order. */
  access: string;
}

export interface DeviceRules {
  defaultAllow: boolean;
  /** The devices the default does not apply to: denied when it allows, allowed when it denies. */
  exceptions: DeviceException[];
}

const number = (n: number | undefined | null): DeviceNumber => (n === undefined || n === null || n < 0 ? '*' : n);
const accessOf = (letters: Set<string>) => [...'rwm'].filter((letter) => letters.has(letter)).join('');
const describe = (e: { type: string; major: DeviceNumber; minor: DeviceNumber }, access: string) => `${e.type} ${e.major}:${e.minor} ${access}`;

/**
 * The rules in order, from a cgroup that denies every device (runc's starting point): an `a` rule sets the default
 * and drops every exception; a rule against the default adds its access to its device's exception; a rule with the
 * default takes its access away from it. As cgroup v1 (and runc), a rule with the default cannot take access away
 * from a wildcard exception that covers it ("cannot punch a hole"): refused, naming the rule.
 */
export function reduceDeviceRules(rules: LinuxDeviceRule[], where = 'linux.resources.devices'): DeviceRules {
  let defaultAllow = false;
  let exceptions = new Map<string, { type: 'c' | 'b'; major: DeviceNumber; minor: DeviceNumber; access: Set<string> }>();
  const keyOf = (type: string, major: DeviceNumber, minor: DeviceNumber) => `${type} ${major}:${minor}`;
  rules.forEach((rule, i) => {
    const type = rule.type ?? 'a';
    if (type === 'a') {
      defaultAllow = rule.allow;
      exceptions = new Map();
      return;
    }
    const device = { type: type as 'c' | 'b', major: number(rule.major), minor: number(rule.minor) };
    const access = new Set(rule.access || 'rwm');
    const key = keyOf(device.type, device.major, device.minor);
    if (rule.allow !== defaultAllow) {
      const entry = exceptions.get(key) ?? { ...device, access: new Set<string>() };
      for (const letter of access) entry.access.add(letter);
      exceptions.set(key, entry);
      return;
    }
    for (const [major, minor] of [['*', device.minor], [device.major, '*'], ['*', '*']] as Array<[DeviceNumber, DeviceNumber]>) {
      const widerKey = keyOf(device.type, major, minor);
      const wider = exceptions.get(widerKey);
      if (!wider || widerKey === key) continue;
      const shared = [...access].filter((letter) => wider.access.has(letter));
      if (shared.length) {
        throw new SpecError(
          `${where}[${i}]: ${rule.allow ? 'allowing' : 'denying'} ${describe(device, accessOf(access))} would punch a hole in the rule ` +
          `${describe(wider, accessOf(wider.access))} before it, which the cgroup v1 devices controller cannot do (runc refuses it too)`,
        );
      }
    }
    const entry = exceptions.get(key);
    if (!entry) return;
    for (const letter of access) entry.access.delete(letter);
    if (entry.access.size === 0) exceptions.delete(key);
  });
  // runc's order: by major, minor (a wildcard first), then type (compared as code units: localeCompare's first call
  // loads ICU's collator, some 6 ms of a create).
  const rank = (n: DeviceNumber) => (n === '*' ? -1 : n);
  const sorted = [...exceptions.values()].sort((a, b) => rank(a.major) - rank(b.major) || rank(a.minor) - rank(b.minor) || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
  return { defaultAllow, exceptions: sorted.map((e) => ({ type: e.type, major: e.major, minor: e.minor, access: accessOf(e.access) })) };
}
