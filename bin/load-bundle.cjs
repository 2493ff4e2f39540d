// Loads one of dist/'s CommonJS bundles with V8's code cache beside it (BUNDLE.cache), so that a run skips
// compiling what the cache holds. The cache is written at the exit of a run that had none (or whose cache V8
// rejected, after a Node upgrade), atomically, and only where the directory is writable; `writeCache: false` leaves
// it to runs that exercise the bundle more fully. Shared by bin/runbox and bin/containerd-shim-runbox-v2.cjs.
'use strict';
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname } = require('node:path');
const vm = require('node:vm');

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
  if (writeCache && (!cachedData || script.cachedDataRejected)) {
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
  const bundleModule = { exports: {} };
  script.runInThisContext()(bundleModule.exports, createRequire(bundle), bundleModule, bundle, dirname(bundle));
  return bundleModule.exports;
}

module.exports = { loadBundle };
