// Compiles proto/ into one JSON descriptor, dist/proto/containerd.json, which src/rpc/protos.ts loads with
// protobufjs/light: the shim then pays neither the .proto parser nor parsing at each start.
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const project = join(dirname(fileURLToPath(import.meta.url)), '..');
const protoDir = join(project, 'proto');
const output = join(project, 'dist', 'proto', 'containerd.json');

function protoFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return protoFiles(path);
    return entry.name.endsWith('.proto') ? [relative(protoDir, path)] : [];
  });
}

const root = new protobuf.Root();
// Imports are relative to proto/; google/protobuf/* are the well-known types protobufjs carries itself.
root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : join(protoDir, target));
root.loadSync(protoFiles(protoDir).sort(), { keepCase: false });
root.resolveAll();

// The well-known types protobufjs carries keep their snake_case names (Any's type_url); the contract with the
// code above is camelCase everywhere, as the parser gives it for our files. Field names are not on the wire.
function camelCaseFields(namespace) {
  if (namespace.fields) {
    namespace.fields = Object.fromEntries(Object.entries(namespace.fields).map(([name, field]) => [protobuf.util.camelCase(name), field]));
  }
  for (const nested of Object.values(namespace.nested ?? {})) camelCaseFields(nested);
  return namespace;
}

mkdirSync(dirname(output), { recursive: true });
const temporary = `${output}.tmp-${process.pid}`;
writeFileSync(temporary, JSON.stringify(camelCaseFields(root.toJSON())));
renameSync(temporary, output);
