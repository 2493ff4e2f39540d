// A slow network link in front of a loopback registry, for benchmarks: an HTTP proxy that holds each request for
// one round trip before forwarding it, and sends every response body through one shared bandwidth budget
// (responses share the link as they would a real one). Counts the body bytes it carried.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TeardownOwner } from '../test/helpers/teardown.js';

export interface ThrottledLink {
  host: string;
  /** Response body bytes carried so far. */
  bytes: number;
  requests: number;
}

export async function startThrottledLink(owner: TeardownOwner, upstream: string, options: { bitsPerSecond: number; rttMs: number }): Promise<ThrottledLink> {
  const bytesPerMs = options.bitsPerSecond / 8 / 1000;
  const link: ThrottledLink = { host: '', bytes: 0, requests: 0 };
  let linkFreeAt = 0;
  const sockets = new Set<Socket>();
  const server = http.createServer(async (request, response) => {
    link.requests++;
    await sleep(options.rttMs);
    const [host, port] = upstream.split(':');
    const forwarded = http.request({ host, port: Number(port), method: request.method, path: request.url, headers: { ...request.headers, host: upstream } }, async (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      for await (const data of answer as AsyncIterable<Buffer>) {
        for (let at = 0; at < data.length; at += 16 * 1024) {
          const piece = data.subarray(at, at + 16 * 1024);
          // The link is busy until every byte queued before this one has gone.
          const now = performance.now();
          linkFreeAt = Math.max(linkFreeAt, now) + piece.length / bytesPerMs;
          if (linkFreeAt - now > 1) await sleep(linkFreeAt - now);
          if (response.destroyed) {
            answer.destroy();
            return;
          }
          link.bytes += piece.length;
          if (!response.write(piece)) await new Promise((resolve) => response.once('drain', resolve));
        }
      }
      response.end();
    });
    forwarded.on('error', () => response.destroy());
    response.on('close', () => forwarded.destroy());
    request.pipe(forwarded);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  owner.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  link.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return link;
}
