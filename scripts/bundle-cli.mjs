// Bundles the CLI (our code and oclif's) into one CommonJS file, dist/runbox.cjs: Node then reads one file
// instead of resolving ~150 modules on every container operation, and bin/runbox can keep V8's compiled code
// for it (dist/runbox.cjs.cache) so that later runs skip compiling it.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

await build({
  entryPoints: ['dist/src/cli/entry.js'],
  outfile: 'dist/runbox.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  // fs-ext is a native addon; typescript is only reached by oclif in development setups.
  external: ['fs-ext', 'typescript'],
  // Every module computes paths relative to its own URL; in the bundle they all share one, pinned to where
  // main.js lives in the unbundled tree (dist/src/cli/), the depth every caller expects.
  banner: { js: 'const __runboxModuleUrl = require("node:url").pathToFileURL(require("node:path").join(__dirname, "src/cli/main.js")).href;' },
  define: { 'import.meta.url': '__runboxModuleUrl' },
  logLevel: 'warning',
});
// Compiled code of an older bundle must not be offered to the new one (V8 would reject it anyway).
rmSync('dist/runbox.cjs.cache', { force: true });
