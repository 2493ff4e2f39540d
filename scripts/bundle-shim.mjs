// Bundles the containerd shim (dist/src/shim/main.js and what it imports, lazily imported modules included) into
// one CommonJS file, dist/containerd-shim-runbox-v2.cjs: containerd runs the binary two or three times per
// container (`start`, the shim, `delete`), and one file loads faster than the module tree (faster still with
// bin/load-bundle.cjs's code cache). Modules the shim imports lazily stay lazy in the bundle (esbuild evaluates
// them at their import()).
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

await build({
  entryPoints: ['dist/src/shim/main.js'],
  outfile: 'dist/containerd-shim-runbox-v2.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Built-ins imported lazily become requires: bin/load-bundle.cjs runs the bundle through node:vm with a code
  // cache, where a real dynamic import has no ESM loader to go to.
  supported: { 'dynamic-import': false },
  minify: true,
  external: ['fs-ext'],
  // Paths are computed from each module's URL; in the bundle they share one, pinned to main.js's (dist/src/shim/).
  banner: { js: 'const __shimModuleUrl = require("node:url").pathToFileURL(require("node:path").join(__dirname, "src/shim/main.js")).href;' },
  define: { 'import.meta.url': '__shimModuleUrl' },
  logLevel: 'warning',
});
// Compiled code of an older bundle must not be offered to the new one.
rmSync('dist/containerd-shim-runbox-v2.cjs.cache', { force: true });
