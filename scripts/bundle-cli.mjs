// Bundles the CLI into two CommonJS files: dist/runbox-lifecycle.cjs, the fast path of lifecycle calls (our
// code only: no oclif), and dist/runbox.cjs, the whole CLI (our code and oclif's), which bin/runbox loads only
// when the first declines. Node then reads one file instead of resolving ~150 modules, and bin/runbox keeps V8's
// compiled code beside each (FILE.cache) so that later runs skip compiling it.
import { bundleForCodeCache } from './bundle-for-code-cache.mjs';

// fs-ext is a native addon; typescript is only reached by oclif in development setups.
const external = ['fs-ext', 'typescript'];
await bundleForCodeCache({ entry: 'dist/src/cli/lifecycle-main.js', outfile: 'dist/runbox-lifecycle.cjs', external });
await bundleForCodeCache({ entry: 'dist/src/cli/main.js', outfile: 'dist/runbox.cjs', external });
