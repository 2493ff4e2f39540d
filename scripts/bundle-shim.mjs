// Bundles the containerd shim (dist/src/shim/main.js and what it imports, lazily imported modules included) into
// one CommonJS file, dist/containerd-shim-runbox-v2.cjs: one file loads faster than the module tree, faster
// still with bin/load-bundle.cjs's code cache. Modules the shim imports lazily stay lazy in the bundle (esbuild
// evaluates them at their import()).
import { bundleForCodeCache } from './bundle-for-code-cache.mjs';

await bundleForCodeCache({ entry: 'dist/src/shim/main.js', outfile: 'dist/containerd-shim-runbox-v2.cjs', external: ['fs-ext'] });
