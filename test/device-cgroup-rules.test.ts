// linux.resources.devices reduced as runc's devices emulator reduces them (what cgroup v1 holds once they are
// written in order), the list the v1 devices files get and the eBPF device program checks on cgroup v2.
import test from 'ava';
import { reduceDeviceRules } from '../src/agent-client/device-cgroup-rules.js';

test('from a cgroup that denies every device: allows are exceptions, merged per device; a deny takes access back', (t) => {
  t.deepEqual(reduceDeviceRules([
    { allow: true, type: 'c', major: 1, minor: 3, access: 'r' },
    { allow: true, type: 'c', major: 1, minor: 3, access: 'mw' },
    { allow: true, type: 'b', major: 7, access: 'rw' },
    { allow: false, type: 'b', major: 7, access: 'w' },
    { allow: true, type: 'c', major: 136 },
  ]), {
    defaultAllow: false,
    exceptions: [
      { type: 'c', major: 1, minor: 3, access: 'rwm' },
      { type: 'b', major: 7, minor: '*', access: 'r' },
      { type: 'c', major: 136, minor: '*', access: 'rwm' },
    ],
  });
});

test('an `a` rule sets the default and forgets every exception before it', (t) => {
  t.deepEqual(reduceDeviceRules([
    { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
    { allow: true, access: 'rwm' },
    { allow: false, type: 'c', major: 10, minor: 200, access: 'rwm' },
    { allow: true, type: 'c', major: 10, minor: 200, access: 'm' },
  ]), { defaultAllow: true, exceptions: [{ type: 'c', major: 10, minor: 200, access: 'rw' }] });
  t.deepEqual(reduceDeviceRules([{ allow: true, access: 'rwm' }, { allow: false, access: 'rwm' }]), { defaultAllow: false, exceptions: [] });
});

test('a rule cannot punch a hole in a wildcard exception before it (runc refuses it)', (t) => {
  const error = t.throws(() => reduceDeviceRules([
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', major: 1, access: 'rw' },
    { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
  ]));
  t.is(error?.message, 'linux.resources.devices[2]: denying c 1:3 w would punch a hole in the rule c 1:* rw before it, '
    + 'which the cgroup v1 devices controller cannot do (runc refuses it too)');
  t.notThrows(() => reduceDeviceRules([
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', major: 1, access: 'r' },
    { allow: false, type: 'c', major: 1, minor: 3, access: 'w' },
  ]), 'access the wildcard does not give is not a hole');
});
