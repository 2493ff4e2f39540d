// The same services over gRPC, for containerd 2.x's shim protocol (bootstrap `"protocol":"grpc"`, service
// containerd.task.v3.Task). @grpc/grpc-js is heavy to load: import this module only when gRPC is asked for.
import { Server, ServerCredentials, type Metadata, type status, type ServerUnaryCall, type ServiceDefinition, type UntypedServiceImplementation, type sendUnaryData } from '@grpc/grpc-js';
import { decode, encode, serviceMethods } from './protos.js';
import { deadlineExceeded, invoke, type MethodImplementation, type ServiceImplementation } from './service.js';
import { StatusCode } from './status-code.js';
import { RpcError } from '../errors/errors.js';
import { bindUnixSocket, unlinkSocket } from '../host/unix-socket.js';

/** How long close() lets aborted calls send their replies before it drops the connections. */
const CLOSE_GRACE_MS = 2000;

/**
 * Serves one service of proto/ (full name, e.g. 'containerd.task.v3.Task') over gRPC on a unix socket created
 * with mode 0600. Methods missing from implementation, and streaming ones, answer UNIMPLEMENTED.
 */
export async function serveGrpc(fullName: string, implementation: ServiceImplementation, socketPath: string): Promise<{ close(): Promise<void> }> {
  const methods = serviceMethods(fullName);
  const inFlight = new Set<AbortController>();
  const definition: Record<string, ServiceDefinition[string]> = {};
  const handlers: UntypedServiceImplementation = {};
  for (const [name, types] of methods) {
    if (types.streaming) continue;
    definition[name] = {
      path: `/${fullName}/${name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (value: object) => encode(types.requestType, value),
      requestDeserialize: (bytes: Buffer) => decode(types.requestType, bytes),
      responseSerialize: (value: object) => encode(types.responseType, value),
      responseDeserialize: (bytes: Buffer) => decode(types.responseType, bytes),
      originalName: name,
    };
  }
  for (const [name, method] of Object.entries(implementation)) {
    if (!definition[name]) throw new Error(`${fullName} has no unary method ${name}`);
    handlers[name] = unaryHandler(method, inFlight);
  }
  const server = new Server();
  server.addService(definition, handlers);
  const inode = await bindUnixSocket(socketPath, (path) => bind(server, path));

  let closing: Promise<void> | undefined;
  const shutDown = async (): Promise<void> => {
    for (const controller of inFlight) controller.abort(new RpcError(StatusCode.UNAVAILABLE, 'the gRPC server is closing'));
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, CLOSE_GRACE_MS);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    unlinkSocket(socketPath, inode);
  };
  return { close: () => (closing ??= shutDown()) };
}

function bind(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`unix:${path}`, ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve()));
  });
}

function unaryHandler(method: MethodImplementation, inFlight: Set<AbortController>) {
  return (call: ServerUnaryCall<object, object>, callback: sendUnaryData<object>): void => {
    const controller = new AbortController();
    inFlight.add(controller);
    call.once('cancelled', () => controller.abort(new RpcError(StatusCode.CANCELLED, 'the gRPC call was cancelled')));
    const deadlineValue = call.getDeadline();
    const deadline = deadlineValue === Infinity ? undefined : new Date(deadlineValue);
    const timer = deadline && setTimeout(() => controller.abort(deadlineExceeded()), Math.max(0, Math.min(deadline.getTime() - Date.now(), 2 ** 31 - 1)));
    const context = { metadata: metadataOf(call.metadata), signal: controller.signal, ...(deadline && { deadline }) };
    invoke(method, call.request, context)
      .then(
        (response) => callback(null, response),
        // Both sides number the codes as google.rpc.Code does.
        (error: RpcError) => callback({ code: error.status as status, details: error.message }),
      )
      .finally(() => {
        clearTimeout(timer);
        inFlight.delete(controller);
      });
  };
}

function metadataOf(metadata: Metadata): Record<string, string[]> {
  const result: Record<string, string[]> = Object.create(null);
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    result[key] = values.map((value) => (typeof value === 'string' ? value : value.toString('base64')));
  }
  return result;
}
