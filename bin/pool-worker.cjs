#!/usr/bin/env node
// A pooled process of the warm pool (docs/warm-pool.md), started by a launcher's refill as
// `node bin/pool-worker.cjs KIND IDLE_SECONDS POOL_DIR ROOM`: it loads KIND's bundle (shim, shimvm: the containerd
// shim's; cli: the lifecycle CLI's) with its code cache, and waits in POOL_DIR to be handed one piece of work. ROOM is
// blank: room in the command line for the title the process takes once taken.
'use strict';
const { join } = require('node:path');
const { loadBundle, writeCacheAtExit } = require('./load-bundle.cjs');

const [kind, idle, dir] = process.argv.slice(2);
process.title = `runbox pool ${kind}`;
const dist = join(__dirname, '..', 'dist');
// The code cache is written by a member that was taken (if there is none): one that idled out exercised little.
const shim = () => {
  const bundle = join(dist, 'containerd-shim-runbox-v2.cjs');
  return loadBundle(bundle, { writeCache: false })
    .poolWorker(kind, Number(idle), dir, join(__dirname, 'containerd-shim-runbox-v2.cjs'), () => writeCacheAtExit(bundle));
};
const entries = {
  shim,
  // A shim that restores a pod's microVM while it waits (docs/warm-pool.md, "VM members").
  shimvm: shim,
  cli: () => {
    const bundle = join(dist, 'runbox-lifecycle.cjs');
    const lifecycle = loadBundle(bundle, { writeCache: false });
    return lifecycle.lifecyclePoolWorker(Number(idle), dir).then((call) => {
      writeCacheAtExit(bundle);
      return require('./runbox.cjs').runCli(call.argv, lifecycle, call.exit);
    });
  },
};
if (!entries[kind] || !(Number(idle) > 0) || !dir) {
  process.stderr.write('usage: pool-worker.cjs shim|shimvm|cli IDLE_SECONDS POOL_DIR [ROOM]\n');
  process.exit(2);
}
entries[kind]();
