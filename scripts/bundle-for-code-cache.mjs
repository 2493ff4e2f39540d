// One esbuild bundle that bin/load-bundle.cjs runs with V8's code cache beside it: CommonJS, minified, with
// import() of what stays outside the bundle (node: built-ins loaded on first use) turned into require (a real
// dynamic import needs the ESM loader, which a script run through node:vm lacks). Every module computes paths
// from its own URL; in a bundle they all share one, pinned to where the entry lives in the unbundled tree.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { relative } from 'node:path';

export async function bundleForCodeCache({ entry, outfile, external }) {
  const entryFromDist = relative('dist', entry);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    supported: { 'dynamic-import': false },
    minify: true,
    external,
    banner: { js: `const __bundleModuleUrl = require("node:url").pathToFileURL(require("node:path").join(__dirname, ${JSON.stringify(entryFromDist)})).href;` },
    define: { 'import.meta.url': '__bundleModuleUrl' },
    logLevel: 'warning',
  });
  // Compiled code of an older bundle must not be offered to the new one (V8 would reject it anyway).
  rmSync(`${outfile}.cache`, { force: true });
}
