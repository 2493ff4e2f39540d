// containerd's own Tasks API over gRPC (containerd.services.tasks.v1.Tasks), for what ctr 1.6 cannot ask:
// Update of a running task's resources, as a Kubernetes kubelet or nerdctl update sends it.
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import protobuf from 'protobufjs';

const TASKS_PROTO = `
syntax = "proto3";
package containerd.services.tasks.v1;
message Any { string type_url = 1; bytes value = 2; }
message UpdateTaskRequest { string container_id = 1; Any resources = 2; map<string, string> annotations = 3; }
message Empty {}
`;

const LINUX_RESOURCES_TYPE = 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources';

const root = protobuf.parse(TASKS_PROTO).root;
const UpdateTaskRequest = root.lookupType('containerd.services.tasks.v1.UpdateTaskRequest');

/** Tasks.Update with a runtime-spec LinuxResources, in containerd namespace `namespace`. */
export async function updateTask(address: string, namespace: string, containerId: string, resources: object): Promise<void> {
  const client = new Client(`unix:${address}`, credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set('containerd-namespace', namespace);
  const request = { containerId, resources: { typeUrl: LINUX_RESOURCES_TYPE, value: Buffer.from(JSON.stringify(resources)) } };
  try {
    await new Promise<void>((resolve, reject) => {
      client.makeUnaryRequest(
        '/containerd.services.tasks.v1.Tasks/Update',
        (value: object) => Buffer.from(UpdateTaskRequest.encode(UpdateTaskRequest.fromObject(value)).finish()),
        () => ({}),
        request, metadata, {},
        (error: ServiceError | null) => (error ? reject(error) : resolve()),
      );
    });
  } finally {
    client.close();
  }
}
