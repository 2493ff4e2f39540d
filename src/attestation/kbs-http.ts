// The key broker over HTTP/1.1 on unix sockets (0600): the KBS API guests use (trustee's paths: POST
// /kbs/v0/auth, POST /kbs/v0/attest, GET /kbs/v0/resource/REPOSITORY/TYPE/TAG, the session in the kbs-session-id
// cookie, refusals as ErrorInformation), and an admin API on a socket of its own for who may set resources and
// reference values (PUT /resource/PATH with the value as the body; PUT /reference-values/NAME with the JSON).
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { KbsError } from '../errors/errors.js';
import { bindUnixSocket, unlinkSocket } from '../host/unix-socket.js';
import type { KeyBroker } from './key-broker.js';
import { KBS_PREFIX, parseJsonBody, SESSION_COOKIE, type ErrorInformation } from './kbs-protocol.js';
import { parseReferenceValues } from './reference-values.js';

/** The largest request body taken: a resource, reference values, evidence. */
const MAX_BODY = 1 << 20;

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new KbsError(`a request body over ${MAX_BODY} bytes`, 413));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

function send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = Buffer.from(JSON.stringify(body));
  response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(text.length), ...headers });
  response.end(text);
}

function refuse(response: ServerResponse, error: unknown): void {
  const status = error instanceof KbsError ? error.status : 500;
  const info: ErrorInformation = {
    type: `https://github.com/confidential-containers/kbs/errors/${status === 401 ? 'AttestationFailed' : status === 404 ? 'ResourceNotFound' : 'BadRequest'}`,
    detail: (error as Error).message,
  };
  send(response, status, info);
}

function sessionCookie(request: IncomingMessage): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [name, value] = part.trim().split('=');
    if (name === SESSION_COOKIE) return value;
  }
  return undefined;
}

async function serveGuest(broker: KeyBroker, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '').split('?')[0]!;
  if (request.method === 'POST' && path === `${KBS_PREFIX}/auth`) {
    const { session, challenge } = broker.auth(parseJsonBody(await readBody(request), 'Request'));
    send(response, 200, challenge, { 'Set-Cookie': `${SESSION_COOKIE}=${session}; Path=${KBS_PREFIX}; HttpOnly` });
  } else if (request.method === 'POST' && path === `${KBS_PREFIX}/attest`) {
    send(response, 200, broker.attest(sessionCookie(request), parseJsonBody(await readBody(request), 'Attestation')));
  } else if (request.method === 'GET' && path.startsWith(`${KBS_PREFIX}/resource/`)) {
    send(response, 200, broker.resource(sessionCookie(request), decodeURIComponent(path.slice(`${KBS_PREFIX}/resource/`.length))));
  } else {
    throw new KbsError(`no ${request.method} ${path} here`, 404);
  }
}

async function serveAdmin(broker: KeyBroker, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '').split('?')[0]!;
  if (request.method === 'PUT' && path.startsWith('/resource/')) {
    broker.setResource(decodeURIComponent(path.slice('/resource/'.length)), await readBody(request));
  } else if (request.method === 'PUT' && path.startsWith('/reference-values/')) {
    const name = decodeURIComponent(path.slice('/reference-values/'.length));
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new KbsError(`"${name}" cannot name reference values (letters, digits, _ . -)`);
    let values;
    try {
      values = parseReferenceValues(parseJsonBody(await readBody(request), 'reference values'));
    } catch (error) {
      throw new KbsError((error as Error).message);
    }
    broker.setReferenceValues(name, values);
  } else if (!(request.method === 'GET' && path === '/health')) {
    throw new KbsError(`no ${request.method} ${path} here`, 404);
  }
  send(response, 200, {});
}

async function listen(path: string, handle: (request: IncomingMessage, response: ServerResponse) => Promise<void>): Promise<{ server: Server; inode: number }> {
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => refuse(response, error));
  });
  // A guest's QEMU holds one connection for the VM's life, idle between its requests.
  server.keepAliveTimeout = 0;
  const inode = await bindUnixSocket(path, (privatePath) => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(privatePath, () => resolve());
  }));
  return { server, inode };
}

export interface KbsEndpoints {
  /** Where guests (their QEMU) connect. */
  socket: string;
  /** Where resources and reference values are set. */
  adminSocket: string;
}

/** Serves the broker on both sockets until close(). */
export async function serveKeyBroker(broker: KeyBroker, endpoints: KbsEndpoints): Promise<{ close(): Promise<void> }> {
  const guest = await listen(endpoints.socket, (request, response) => serveGuest(broker, request, response));
  const admin = await listen(endpoints.adminSocket, (request, response) => serveAdmin(broker, request, response));
  return {
    close: async () => {
      for (const [{ server, inode }, path] of [[guest, endpoints.socket], [admin, endpoints.adminSocket]] as const) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        unlinkSocket(path, inode);
      }
    },
  };
}

/** One call of the admin API (`runbox enclave kbs put-resource`, `set-reference-values`); a refusal throws its detail. */
export function kbsAdmin(adminSocket: string, method: string, path: string, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = httpRequest({ socketPath: adminSocket, method, path, headers: { 'Content-Length': String(body.length) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        if (response.statusCode === 200) return resolve();
        let detail = Buffer.concat(chunks).toString('utf8');
        try {
          detail = (JSON.parse(detail) as ErrorInformation).detail ?? detail;
        } catch {
          // not ErrorInformation: its words as they are
        }
        reject(new KbsError(`the key broker refused: ${detail}`, response.statusCode));
      });
    });
    call.on('error', (error) => reject(new KbsError(`cannot reach the key broker's admin socket ${adminSocket}: ${error.message}`, 503)));
    call.end(body);
  });
}
