#!/usr/bin/env node
// The shim's TypeScript side (bin/containerd-shim-runbox-v2 says when it runs): the bundle
// dist/containerd-shim-runbox-v2.cjs (scripts/bundle-shim.mjs) with its code cache (load-bundle.cjs), or the
// module tree (dist/src/shim/main.js) when there is no bundle. The long-running shim is this file run with
// containerd's flags and no subcommand. CommonJS (bin/package.json): neither the ESM loader nor resolving a
// module tree is paid on the bundled path.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { loadBundle } = require('./load-bundle.cjs');

const bundle = join(__dirname, '..', 'dist', 'containerd-shim-runbox-v2.cjs');
const argv = process.argv.slice(2);
// The long-running shim uses most of the bundle; a cache written by a short `start` or `delete` would hold little.
const serving = !argv.includes('start') && !argv.includes('delete');
const loaded = existsSync(bundle) ? Promise.resolve(loadBundle(bundle, { writeCache: serving })) : import('../dist/src/shim/main.js');
loaded
  .then(({ main }) => main(argv, __filename))
  .catch((error) => {
    process.stderr.write(`containerd-shim-runbox-v2: ${error && error.message ? error.message : error}\n`);
    process.exit(1);
  });
