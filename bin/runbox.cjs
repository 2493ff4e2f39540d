#!/usr/bin/env node
// The runbox CLI in Node (bin/runbox runs it, through dist/runbox-launcher when that is built). Runs the bundled
// CLI with V8's code cache beside each bundle (load-bundle.cjs), or the module tree when there is no bundle: first
// dist/runbox-lifecycle.cjs (plain lifecycle calls, no oclif), and only when it declines the argv, dist/runbox.cjs
// (the whole CLI on oclif). A pooled CLI worker (pool-worker.cjs) runs its call through runCli too. This file is
// CommonJS (bin/package.json): the ESM loader's own start-up is a cost every operation would pay.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { loadBundle } = require('./load-bundle.cjs');

const dist = join(__dirname, '..', 'dist');

// The lifecycle bundle's code cache holds what the run that wrote it compiled: create and run use most of it; a
// cache written by `state` or `list` would leave the rest to be compiled on every create.
const exercisesLifecycle = (argv) => argv.includes('create') || argv.includes('run');

/**
 * Runs one call of the CLI; lifecycle is the loaded dist/runbox-lifecycle.cjs, exit how a lifecycle call ends (a
 * pooled worker's own: src/cli/cli-pool-worker.ts).
 */
function runCli(argv, lifecycle = loadBundle(join(dist, 'runbox-lifecycle.cjs'), { writeCache: exercisesLifecycle(argv) }), exit = process.exit) {
  return lifecycle.lifecycleMain(argv).then((code) => {
    // A lifecycle call is over once it has answered: exiting at once spares it the idle-time garbage collection
    // and the event loop's teardown (2–5 ms). lifecycleMain resolves once its output is out (a pipe that was
    // full holds the rest in Node's queue until the reader takes it: src/cli/stdio-drained.ts).
    if (code !== undefined) exit(code);
    return loadBundle(join(dist, 'runbox.cjs')).main(argv).then((status) => {
      process.exitCode = status;
    });
  });
}

module.exports = { runCli };

if (require.main === module) {
  if (!existsSync(join(dist, 'runbox-lifecycle.cjs'))) {
    import('../dist/src/cli/entry.js');
  } else {
    runCli(process.argv.slice(2));
  }
}
