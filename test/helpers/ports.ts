import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A loopback TCP port free right now, for a server started by a test or a benchmark. */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
