import test from 'ava';
import { capabilityMask } from '../src/oci/capabilities.js';
import { MS, parseMountOptions, rootfsPropagation } from '../src/oci/mount-options.js';
import { parseSignal } from '../src/oci/signals.js';
import { parseGlobalOptions } from '../src/cli/global-options.js';
import { validateContainerId } from '../src/runtime/container-id.js';

test('signals parse as runc parses them: names with or without SIG, any case, numbers', (t) => {
  for (const text of ['TERM', 'SIGTERM', 'sigterm', 'term', '15']) t.is(parseSignal(text), 15);
  t.is(parseSignal('KILL'), 9);
  t.is(parseSignal('SIGRTMIN+1'), 35);
  t.throws(() => parseSignal('SIGNOPE'), { message: 'unknown signal "SIGNOPE"' });
  t.is(parseSignal('0'), 0, 'as kill(2): checks the process is there, sends nothing');
  t.throws(() => parseSignal('65'));
});

test('mount options become flags, propagation and data', (t) => {
  const parsed = parseMountOptions(['nosuid', 'noexec', 'ro', 'rbind', 'rslave', 'mode=755', 'size=65536k']);
  t.is(parsed.flags, MS.NOSUID | MS.NOEXEC | MS.RDONLY | MS.BIND | MS.REC);
  t.is(parsed.propagation, MS.SLAVE | MS.REC);
  t.is(parsed.data, 'mode=755,size=65536k');
  t.is(parseMountOptions(['ro', 'rw']).flags & MS.RDONLY, 0);
  t.is(rootfsPropagation(undefined), MS.SLAVE | MS.REC);
  t.throws(() => rootfsPropagation('sideways'), { message: /rootfsPropagation/ });
});

test('capability names become the mask the agent takes', (t) => {
  t.is(capabilityMask(['CAP_CHOWN', 'CAP_KILL'], 'bounding'), '0x21');
  t.is(capabilityMask([], 'bounding'), '0x0');
  t.throws(() => capabilityMask(['CAP_FLY'], 'effective'), { message: /unknown capability "CAP_FLY" in process.capabilities.effective/ });
});

test('container ids that could escape the state root are refused', (t) => {
  for (const good of ['web-1.a_b+c', '-x', '_x', '.x', ',x', 'a,b', '+x', '...']) t.is(validateContainerId(good), good);
  for (const bad of ['', '..', '.', 'a/b', '/abs', 'x'.repeat(256), 'a b', 'a\nb', 'a:b']) {
    t.throws(() => validateContainerId(bad), undefined, JSON.stringify(bad));
  }
});

test('runc global flags come before the command', (t) => {
  const { options, rest } = parseGlobalOptions(['--root', '/r', '--log=/l', '--log-format', 'json', '--debug', '--systemd-cgroup', 'state', '--x', 'id']);
  t.deepEqual(options, { root: '/r', log: '/l', logFormat: 'json', debug: true });
  t.deepEqual(rest, ['state', '--x', 'id']);
  t.throws(() => parseGlobalOptions(['--log-format', 'xml', 'state']), { message: /log-format/ });
  t.throws(() => parseGlobalOptions(['--bogus', 'state']), { message: /not defined: -bogus/ });
  t.throws(() => parseGlobalOptions(['--root']), { message: /needs an argument/ });
});
