// Image references as docker and containerd read them: [registry[:port]/]repository[:tag][@digest], with Docker
// Hub's defaults (docker.io → registry-1.docker.io, a one-component name → library/NAME, no tag → latest).
import { ImageReferenceError } from '../errors/errors.js';
import { parseDigest } from './digest.js';

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';

export interface ImageReference {
  /** The registry as written (docker.io for Docker Hub). */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

function looksLikeRegistry(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

export function parseReference(text: string): ImageReference {
  const bad = (why: string): never => {
    throw new ImageReferenceError(`invalid image reference "${text}": ${why}`);
  };
  if (!text || text.length > 1024) bad('empty or too long');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      parseDigest(digest);
    } catch (error) {
      bad((error as Error).message);
    }
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`tag "${tag}" is not valid`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  if (parts.length > 1 && looksLikeRegistry(parts[0]!)) registry = parts.shift()!;
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  for (const part of parts) if (!COMPONENT.test(part)) bad(`repository component "${part}" is not valid (lowercase letters, digits, separators)`);
  if (!tag && !digest) tag = 'latest';
  return { registry, repository: parts.join('/'), ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** The canonical form: registry/repository[:tag][@digest]. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** The host:port the distribution API is served from. */
export function registryHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** What to ask the registry's manifest endpoint for: the digest when there is one, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag!;
}
