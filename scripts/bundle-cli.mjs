// Bundles the CLI into two CommonJS files: dist/runbox-lifecycle.cjs, the fast path of lifecycle calls (our
// code only: no oclif), and dist/runbox.cjs, the whole CLI (our code and oclif's), which bin/runbox loads only
// when the first declines. Node then reads one file instead of resolving ~150 modules, and bin/runbox keeps V8's
// compiled code beside each (FILE.cache) so that later runs skip compiling it.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

const bundles = [
  { entry: 'dist/src/cli/lifecycle-main.js', outfile: 'dist/runbox-lifecycle.cjs' },
  { entry: 'dist/src/cli/main.js', outfile: 'dist/runbox.cjs' },
];

for (const { entry, outfile } of bundles) {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // import() of what stays outside the bundle (node: built-ins loaded on first use) becomes a require:
    // a real dynamic import needs the ESM loader, which a script run through node:vm's code cache lacks.
    supported: { 'dynamic-import': false },
    minify: true,
    // fs-ext is a native addon; typescript is only reached by oclif in development setups.
    external: ['fs-ext', 'typescript'],
    // Every module computes paths relative to its own URL; in a bundle they all share one, pinned to where
    // main.js lives in the unbundled tree (dist/src/cli/), the depth every caller expects.
    banner: { js: 'const __runboxModuleUrl = require("node:url").pathToFileURL(require("node:path").join(__dirname, "src/cli/main.js")).href;' },
    define: { 'import.meta.url': '__runboxModuleUrl' },
    logLevel: 'warning',
  });
  // Compiled code of an older bundle must not be offered to the new one (V8 would reject it anyway).
  rmSync(`${outfile}.cache`, { force: true });
}
