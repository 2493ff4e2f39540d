// A bundle (config.json and an empty rootfs) and a state root in a temporary directory of the test's own, for the
// unit tests that run the runtime or the shim on the fake driver.
import type { ExecutionContext } from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSpec } from '../../src/oci/default-spec.js';
import type { Spec } from '../../src/oci/spec.js';

export interface FakeBundle {
  dir: string;
  bundle: string;
  root: string;
}

/** The default spec (`runbox spec`) without a terminal, as `change` leaves it. */
export function fakeBundle(t: ExecutionContext, change: (spec: Spec) => void = () => {}): FakeBundle {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bundle = join(dir, 'bundle');
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  const spec = defaultSpec();
  spec.process!.terminal = false;
  change(spec);
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  return { dir, bundle, root: join(dir, 'root') };
}
