// The process entry of the runbox CLI (bundled into dist/runbox.cjs by scripts/bundle-cli.mjs).
import { main } from './main.js';

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
