// Bundles the containerd shim (dist/src/shim/main.js and what it imports, lazily imported modules included) into
// one CommonJS file, dist/containerd-shim-runbox-v2.cjs: containerd runs the binary two or three times per
// container (`start`, the shim, `delete`), and one file loads faster than the module tree. Modules the shim
// imports lazily stay lazy in the bundle (esbuild evaluates them at their import()).
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/src/shim/main.js'],
  outfile: 'dist/containerd-shim-runbox-v2.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  external: ['fs-ext'],
  // Paths are computed from each module's URL; in the bundle they share one, pinned to main.js's (dist/src/shim/).
  banner: { js: 'const __shimModuleUrl = require("node:url").pathToFileURL(require("node:path").join(__dirname, "src/shim/main.js")).href;' },
  define: { 'import.meta.url': '__shimModuleUrl' },
  logLevel: 'warning',
});
