// The process entry of the runbox CLI when it is not bundled (bin/runbox runs the bundles of
// scripts/bundle-cli.mjs the same way): the fast lifecycle path, else the whole CLI.
import { lifecycleMain } from './lifecycle-main.js';
import { main } from './main.js';

const argv = process.argv.slice(2);
void lifecycleMain(argv).then(async (code) => {
  process.exitCode = code ?? await main(argv);
});
