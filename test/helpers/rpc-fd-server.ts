// Serves containerd.task.v2.Task on the listening socket inherited as fd 3, as the shim does after `start`
// re-spawned it; prints "ready" once serving and stops on SIGTERM.
import { TtrpcServer } from '../../src/rpc/ttrpc-server.js';

const server = new TtrpcServer();
server.addService('containerd.task.v2.Task', {
  Connect: async () => ({ shimPid: process.pid, version: 'fd-server' }),
});
await server.listen({ fd: 3 });
process.stdout.write('ready\n');
process.once('SIGTERM', () => void server.close());
