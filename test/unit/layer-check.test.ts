// scripts/check-layers.mjs, which `npm test` runs over src/: over tiny trees of its own, it passes imports that
// run down and fails each import that runs up or sideways, each cycle, and each file outside the layers.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../../scripts/check-layers.mjs', import.meta.url));

/** A source tree of `files` (path → its imports) in a temporary directory. */
function tree(t: ExecutionContext, files: Record<string, string[]>): string {
  const dir = mkdtempSync(join(tmpdir(), 'runbox-layers-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [path, imports] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), `${imports.map((name, i) => `import * as m${i} from '${name}';\nvoid m${i};\n`).join('')}export const here = 1;\n`);
  }
  return dir;
}

function check(dir: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, dir], (error, _stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stderr }));
  });
}

test('imports that run down the layers, and within a folder, pass', async (t) => {
  const dir = tree(t, {
    'cli/command.ts': ['../runtime/runtime.js', '../host/logger.js', './other.js'],
    'cli/other.ts': [],
    'runtime/runtime.ts': ['../drivers/drivers.js', '../errors/errors.js'],
    'drivers/drivers.ts': ['../sandbox/driver.js', '../host/logger.js'],
    'sandbox/driver.ts': ['../oci/spec.js'],
    'oci/spec.ts': ['../errors/errors.js'],
    'host/logger.ts': [],
    'errors/errors.ts': [],
  });
  t.deepEqual(await check(dir), { code: 0, stderr: '' });
});

test('an upward import fails the check, naming both files', async (t) => {
  const dir = tree(t, { 'host/logger.ts': ['../cli/command.js'], 'cli/command.ts': [] });
  const { code, stderr } = await check(dir);
  t.is(code, 1);
  t.is(stderr, 'check-layers: upward import: host/logger.ts → cli/command.ts (host is below cli)\n');
});

test('a type-only or dynamic upward import fails it too', async (t) => {
  const dir = tree(t, { 'oci/spec.ts': [], 'cli/command.ts': [], 'errors/errors.ts': [] });
  writeFileSync(join(dir, 'oci/spec.ts'), "import type { here } from '../cli/command.js';\nexport type T = typeof here;\n");
  writeFileSync(join(dir, 'errors/errors.ts'), "export const load = () => import('../oci/spec.js');\n");
  const { code, stderr } = await check(dir);
  t.is(code, 1);
  t.regex(stderr, /upward import: oci\/spec\.ts → cli\/command\.ts/);
  t.regex(stderr, /upward import: errors\/errors\.ts → oci\/spec\.ts/);
});

test('a cycle, a sideways import within one layer and a file outside the layers each fail it', async (t) => {
  const dir = tree(t, {
    'oci/a.ts': ['./b.js'],
    'oci/b.ts': ['./a.js'],
    'image/pull.ts': ['../sandbox/driver.js'],
    'sandbox/driver.ts': [],
    'misc/thing.ts': [],
  });
  const { code, stderr } = await check(dir);
  t.is(code, 1);
  t.regex(stderr, /import cycle: oci\/a\.ts → oci\/b\.ts → oci\/a\.ts/);
  t.regex(stderr, /sideways import: image\/pull\.ts → sandbox\/driver\.ts/);
  t.regex(stderr, /misc\/thing\.ts is in no layer/);
});
