// The Node-API addons runbox builds into dist/ (native/addon/), each loaded once, at its first use.
import { projectPath } from './install-paths.js';

const loaded = new Map<string, unknown>();

/** dist/FILE, loaded (process.dlopen) the first time it is asked for. */
export function nativeAddon<T>(file: string): T {
  if (!loaded.has(file)) {
    const module = { exports: {} };
    process.dlopen(module, projectPath('dist', file));
    loaded.set(file, module.exports);
  }
  return loaded.get(file) as T;
}
