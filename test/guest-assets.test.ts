// The guest's kernel parameters: the host's TSC frequency they carry is read once per boot of the host.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostTscKhz } from '../src/drivers/qemu/guest-assets.js';

const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

function keptFile(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-tsc-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'runbox-qemu', 'host-tsc.json');
}

test('the host TSC frequency is read, kept for this boot of the host, and the kept value used after', (t) => {
  const file = keptFile(t);
  const khz = hostTscKhz(file);
  t.true(Number.isInteger(khz) && khz > 100_000, `a plausible TSC frequency: ${khz} kHz`);
  t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { khz, bootId });
  writeFileSync(file, JSON.stringify({ khz: 1_234_567, bootId }));
  t.is(hostTscKhz(file), 1_234_567, 'what was kept in this boot is what is used');
});

test('a TSC frequency kept in an earlier boot of the host is read again', (t) => {
  const file = keptFile(t);
  const khz = hostTscKhz(file);
  writeFileSync(file, JSON.stringify({ khz: 1_234_567, bootId: 'an-earlier-boot' }));
  t.is(hostTscKhz(file), khz);
  t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { khz, bootId });
});
