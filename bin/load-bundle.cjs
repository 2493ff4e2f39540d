// Loads one of dist/'s CommonJS bundles with V8's code cache beside it (BUNDLE.cache), so that a run skips
// compiling what the cache holds. The cache is written at the exit of a run that had none (or whose cache V8
// rejected, after a Node upgrade), atomically, and only where the directory is writable; `writeCache: false` leaves
// it to runs that exercise the bundle more fully, or to this one once it knows it will (writeCacheAtExit: a pooled
// process once taken; one that idled out would write a cache of little more than its wait). Shared by bin/runbox,
// bin/containerd-shim-runbox-v2.cjs and bin/pool-worker.cjs.
'use strict';
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname } = require('node:path');
const vm = require('node:vm');

/** Bundles loaded with writeCache false whose cache is missing or was rejected: how to write it at exit. */
const unwritten = new Map();

function saveCacheAtExit(cacheFile, script) {
  process.once('exit', () => {
    try {
      const temporary = `${cacheFile}.${process.pid}`;
      writeFileSync(temporary, script.createCachedData());
      renameSync(temporary, cacheFile);
    } catch {
      // A read-only install runs without the cache.
    }
  });
}

function loadBundle(bundle, { writeCache = true } = {}) {
  const cacheFile = `${bundle}.cache`;
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${readFileSync(bundle, 'utf8')}\n})`, {
    filename: bundle,
    cachedData,
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  if (!cachedData || script.cachedDataRejected) {
    if (writeCache) saveCacheAtExit(cacheFile, script);
    else unwritten.set(bundle, () => saveCacheAtExit(cacheFile, script));
  }
  const bundleModule = { exports: {} };
  script.runInThisContext()(bundleModule.exports, createRequire(bundle), bundleModule, bundle, dirname(bundle));
  return bundleModule.exports;
}

/** Writes the cache of a bundle this process loaded with writeCache false at its exit after all, if it lacks one. */
function writeCacheAtExit(bundle) {
  unwritten.get(bundle)?.();
  unwritten.delete(bundle);
}

module.exports = { loadBundle, writeCacheAtExit };
