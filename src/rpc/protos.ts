// The containerd and ttrpc protobuf types, from the JSON descriptor the build generates out of proto/
// (scripts/build-protos.mjs). With protobufjs/light it needs neither the .proto files nor the parser at run time,
// loads as fast as either those or static code, and keeps protobufjs's reflection types (docs/rpc.md).
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs/light.js';
import { projectPath } from '../host/install-paths.js';

const DESCRIPTOR = projectPath('dist', 'proto', 'containerd.json');

/** How every decoded message is shown to the code above: see the rpc contract. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: Number, bytes: Buffer, defaults: true, arrays: true, objects: true };

let loaded: protobuf.Root | undefined;
const servicesByName = new Map<string, Map<string, MethodTypes>>();

function root(): protobuf.Root {
  if (!loaded) {
    let json: string;
    try {
      json = readFileSync(DESCRIPTOR, 'utf8');
    } catch (error) {
      throw new Error(`protobuf descriptor ${DESCRIPTOR} is missing (run npm run build): ${(error as Error).message}`);
    }
    loaded = protobuf.Root.fromJSON(JSON.parse(json));
  }
  return loaded;
}

/** A message type by full name, e.g. 'containerd.events.TaskExit'. */
export function messageType(fullName: string): protobuf.Type {
  const found = root().lookup(fullName);
  if (!(found instanceof protobuf.Type)) throw new Error(`unknown protobuf message type ${fullName}`);
  return found;
}

export interface MethodTypes {
  name: string;
  requestType: protobuf.Type;
  responseType: protobuf.Type;
  /** Client or server streaming: neither transport here serves those. */
  streaming: boolean;
}

/** The methods of a service by full name, e.g. 'containerd.task.v2.Task'. */
export function serviceMethods(fullName: string): Map<string, MethodTypes> {
  let methods = servicesByName.get(fullName);
  if (!methods) servicesByName.set(fullName, (methods = resolveService(fullName)));
  return methods;
}

function resolveService(fullName: string): Map<string, MethodTypes> {
  const service = root().lookup(fullName);
  if (!(service instanceof protobuf.Service)) throw new Error(`unknown protobuf service ${fullName}`);
  const methods = new Map<string, MethodTypes>();
  for (const method of service.methodsArray) {
    method.resolve();
    methods.set(method.name, {
      name: method.name,
      requestType: method.resolvedRequestType!,
      responseType: method.resolvedResponseType!,
      streaming: Boolean(method.requestStream || method.responseStream),
    });
  }
  return methods;
}

/**
 * Has protobufjs generate now the codecs it would otherwise generate at each type's first use (the Task service's
 * types cost a shim some 40 ms of its first calls): those of these services' methods and of these messages, and of
 * every message type they hold.
 */
export function precompileCodecs(services: string[], messages: string[]): void {
  const pending = [
    ...services.flatMap((name) => [...serviceMethods(name).values()].flatMap((method) => [method.requestType, method.responseType])),
    ...messages.map(messageType),
  ];
  const done = new Set<protobuf.Type>();
  for (let type = pending.pop(); type; type = pending.pop()) {
    if (done.has(type)) continue;
    done.add(type);
    decode(type, encode(type, {}));
    for (const field of type.fieldsArray) if (field.resolvedType instanceof protobuf.Type) pending.push(field.resolvedType);
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encodes a plain object (missing fields = defaults). */
export function encode(type: protobuf.Type, value: object | undefined): Buffer {
  return asBuffer(type.encode(type.fromObject(value ?? {})).finish());
}

/** Decodes to a plain object; throws protobufjs's error on malformed input. */
export function decode(type: protobuf.Type, bytes: Uint8Array): any {
  return type.toObject(type.decode(bytes), TO_OBJECT);
}

/** A message's bytes by type name, e.g. the DeleteResponse the shim's `delete` subcommand prints. */
export function encodeMessage(fullName: string, value: object): Buffer {
  return encode(messageType(fullName), value);
}

export function decodeMessage(fullName: string, bytes: Uint8Array): any {
  return decode(messageType(fullName), bytes);
}

/** A google.protobuf.Any whose type_url is the bare full name, as containerd writes its events. */
export function encodeAny(fullName: string, value: object): { typeUrl: string; value: Buffer } {
  return { typeUrl: fullName, value: encodeMessage(fullName, value) };
}

/** The message name an Any's type URL ends with (`types.example.com/pkg.Message` → `pkg.Message`). */
export function anyTypeName(any: { typeUrl: string }): string {
  return any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
}

/** The message inside an Any, by its type_url (bare, or with a `…/` prefix such as type.googleapis.com/). */
export function decodeAny(any: { typeUrl: string; value: Uint8Array }): any {
  return decodeMessage(anyTypeName(any), any.value);
}
