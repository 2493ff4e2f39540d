import { createServer, type Server, type Socket } from 'node:net';
import { serviceMethods } from './protos.js';
import type { ServiceImplementation } from './service.js';
import { StatusCode } from './status-code.js';
import { RpcError } from '../errors/errors.js';
import { type RegisteredMethod, TtrpcServerConnection } from './ttrpc-server-connection.js';
import { bindUnixSocket, unlinkSocket } from '../host/unix-socket.js';

/** A ttrpc server (containerd/ttrpc's protocol, unary calls) for the services of proto/. */
export class TtrpcServer {
  private readonly services = new Map<string, Map<string, RegisteredMethod>>();
  private readonly connections = new Set<TtrpcServerConnection>();
  private readonly server: Server = createServer((socket) => this.accept(socket)).on('error', () => {
    // A failed accept (EMFILE…) costs that one client its connection, never the server.
  });
  private socketFile: { path: string; inode: number } | undefined;
  private closing: Promise<void> | undefined;

  /**
   * Serves a service of proto/ by full name (e.g. 'containerd.task.v2.Task'). Its methods missing from
   * implementation answer UNIMPLEMENTED; a name the service does not have is a mistake, reported here.
   */
  addService(fullName: string, implementation: ServiceImplementation): void {
    const methods = serviceMethods(fullName);
    const registered = new Map<string, RegisteredMethod>();
    for (const [name, method] of Object.entries(implementation)) {
      const types = methods.get(name);
      if (!types) throw new Error(`${fullName} has no method ${name}`);
      if (types.streaming) throw new Error(`${fullName}/${name} is a streaming method, which ttrpc here does not serve`);
      registered.set(name, { types, implementation: method });
    }
    this.services.set(fullName, registered);
  }

  /** Listens on a unix socket path (created with mode 0600, replacing a stale one) or on an inherited fd. */
  async listen(target: string | { fd: number }): Promise<void> {
    if (typeof target === 'string') {
      const inode = await bindUnixSocket(target, (path) => this.listenOn(path));
      this.socketFile = { path: target, inode };
    } else {
      await this.listenOn(target);
    }
  }

  /** Stops accepting, aborts the calls in flight and ends every connection once its replies are sent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    const wasListening = this.server.listening;
    // Resolves once the listener is closed and every connection has ended.
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const connection of this.connections) connection.end(new RpcError(StatusCode.UNAVAILABLE, 'the ttrpc server is closing'));
    if (wasListening) await stopped;
    if (this.socketFile) unlinkSocket(this.socketFile.path, this.socketFile.inode);
  }

  private listenOn(target: string | { fd: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(target, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  private accept(socket: Socket): void {
    if (this.closing) return void socket.destroy();
    const connection = new TtrpcServerConnection(socket, (service, method) => this.resolveMethod(service, method));
    this.connections.add(connection);
    void connection.closed.then(() => this.connections.delete(connection));
  }

  private resolveMethod(service: string, method: string): RegisteredMethod | RpcError {
    const methods = this.services.get(service);
    if (!methods) return new RpcError(StatusCode.UNIMPLEMENTED, `service ${service} is not served`);
    return methods.get(method) ?? new RpcError(StatusCode.UNIMPLEMENTED, `method ${service}/${method} is not implemented`);
  }
}
