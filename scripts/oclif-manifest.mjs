// Writes oclif.manifest.json (what `oclif manifest` writes), so that oclif reads one JSON file at start-up
// instead of importing every command to learn its flags.
import { Plugin } from '@oclif/core';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const plugin = new Plugin({ root, type: 'core', ignoreManifest: true, errorOnManifestCreate: true, isRoot: true });
await plugin.load();
writeFileSync(new URL('../oclif.manifest.json', import.meta.url), `${JSON.stringify(plugin.manifest)}\n`);
