// Fails (exit 1) on an import cycle under a source tree and on an import that runs from a lower layer to a higher
// one, from madge's graph of the tree (type-only and dynamic imports count too). The layers, bottom first, are
// the folders of src/; a folder imports its own files and those of the layers below it, never a sibling's of
// its own layer (image and rpc use host and oci only). `node scripts/check-layers.mjs [DIR]` (DIR: src).
import madge from 'madge';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export const LAYERS = [
  ['errors', 'generated'],
  ['host'],
  ['oci'],
  ['rpc', 'fuse', 'nbd', 'erofs', 'attestation'],
  ['image', 'sandbox'],
  ['lazy-loader', 'agent-client'],
  ['drivers'],
  ['runtime'],
  ['shim'],
  ['cli'],
  ['demo'],
];

const rankOf = new Map(LAYERS.flatMap((folders, rank) => folders.map((folder) => [folder, rank])));

/** The folder of a path relative to the tree: its first component ('' for a file at the top). */
function folderOf(path) {
  const slash = path.indexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

/** What is wrong with the tree at `dir`, one line each: cycles, upward imports, files outside every layer. */
export async function layerProblems(dir) {
  const graph = await madge(resolve(dir), {
    fileExtensions: ['ts'],
    detectiveOptions: { ts: { skipTypeImports: false, skipAsyncImports: false } },
  });
  const problems = graph.circular().map((cycle) => `import cycle: ${[...cycle, cycle[0]].join(' → ')}`);
  for (const [from, imports] of Object.entries(graph.obj())) {
    const fromFolder = folderOf(from);
    if (!rankOf.has(fromFolder)) {
      problems.push(`${from} is in no layer (scripts/check-layers.mjs lists them: ${LAYERS.flat().join(', ')})`);
      continue;
    }
    for (const to of imports) {
      const toFolder = folderOf(to);
      if (toFolder === fromFolder || !rankOf.has(toFolder)) continue;
      if (rankOf.get(toFolder) === rankOf.get(fromFolder)) {
        problems.push(`sideways import: ${from} → ${to} (${fromFolder} and ${toFolder} are one layer: neither imports the other)`);
      } else if (rankOf.get(toFolder) > rankOf.get(fromFolder)) {
        problems.push(`upward import: ${from} → ${to} (${fromFolder} is below ${toFolder})`);
      }
    }
  }
  return problems;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? 'src';
  const problems = await layerProblems(dir);
  for (const problem of problems) process.stderr.write(`check-layers: ${problem}\n`);
  if (problems.length) process.exit(1);
}
