// A client of Kubernetes' CRI (runtime.v1.RuntimeService and ImageService) over containerd's socket, as kubelet
// speaks it: @grpc/grpc-js with the types of proto/k8s.io/ (compiled into dist/proto/cri.json).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import protobuf from 'protobufjs/light.js';
import { PROJECT } from './runbox.js';

const DESCRIPTOR = join(PROJECT, 'dist', 'proto', 'cri.json');
/** Enums by name: a test reads `CONTAINER_RUNNING`, not 1. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, bytes: Buffer, defaults: true, arrays: true, objects: true };
const DEFAULT_DEADLINE_MS = 120_000;

let root: protobuf.Root | undefined;
function types(): protobuf.Root {
  root ??= protobuf.Root.fromJSON(JSON.parse(readFileSync(DESCRIPTOR, 'utf8')));
  return root;
}

export type CriService = 'RuntimeService' | 'ImageService';

export class CriClient {
  private readonly client: Client;

  constructor(address: string) {
    this.client = new Client(`unix:${address}`, credentials.createInsecure());
  }

  /** One unary call, request and response as plain objects (camelCase fields, enums by name). */
  call(service: CriService, method: string, request: object, deadlineMs = DEFAULT_DEADLINE_MS): Promise<any> {
    const found = types().lookupService(`runtime.v1.${service}`).methods[method];
    if (!found) throw new Error(`runtime.v1.${service} has no method ${method} in proto/k8s.io`);
    const requestType = types().lookupType(found.requestType);
    const responseType = types().lookupType(found.responseType);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/runtime.v1.${service}/${method}`,
        (value: object) => Buffer.from(requestType.encode(requestType.fromObject(value)).finish()),
        (bytes: Buffer) => responseType.toObject(responseType.decode(bytes), TO_OBJECT),
        request, new Metadata(), { deadline: Date.now() + deadlineMs },
        (error: ServiceError | null, response?: unknown) => (error ? reject(error) : resolve(response)),
      );
    });
  }

  runtime(method: string, request: object = {}, deadlineMs?: number): Promise<any> {
    return this.call('RuntimeService', method, request, deadlineMs);
  }

  image(method: string, request: object = {}): Promise<any> {
    return this.call('ImageService', method, request);
  }

  close(): void {
    this.client.close();
  }
}
