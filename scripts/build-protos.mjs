// Compiles proto/ (plus containerd.task.v3, derived below) into one JSON descriptor, dist/proto/containerd.json, which src/rpc/protos.ts loads with
// protobufjs/light: the shim then pays neither the .proto parser nor parsing at each start. Kubernetes' CRI
// (proto/k8s.io/, which only the tests and the bench speak, to containerd) goes apart into dist/proto/cri.json.
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const project = join(dirname(fileURLToPath(import.meta.url)), '..');
const protoDir = join(project, 'proto');
const output = join(project, 'dist', 'proto', 'containerd.json');
const criOutput = join(project, 'dist', 'proto', 'cri.json');
const CRI_DIR = 'k8s.io';

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
root.loadSync(protoFiles(protoDir).filter((file) => !file.startsWith(`${CRI_DIR}/`)).sort(), { keepCase: false });

// containerd.task.v3 (containerd 2.x) is task.v2's service and messages, field for field, in their own package,
// plus an event stream containerd uses only when a shim announces it (runbox does not). It is derived here
// rather than kept as a second copy of shim.proto.
const task = root.lookup('containerd.task');
const v3 = protobuf.Namespace.fromJSON('v3', task.lookup('v2').toJSON());
v3.lookupService('Task').add(new protobuf.Method('Events', 'rpc', 'google.protobuf.Empty', 'containerd.types.Envelope', false, true));
task.add(v3);
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

function writeDescriptor(path, descriptor) {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, JSON.stringify(camelCaseFields(descriptor.toJSON())));
  renameSync(temporary, path);
}

writeDescriptor(output, root);
const cri = new protobuf.Root();
cri.loadSync(protoFiles(join(protoDir, CRI_DIR)).map((file) => join(protoDir, file)), { keepCase: false });
cri.resolveAll();
writeDescriptor(criOutput, cri);
