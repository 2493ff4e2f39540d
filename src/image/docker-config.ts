// Credentials from the Docker client's config file ($DOCKER_CONFIG/config.json or ~/.docker/config.json),
// its `auths` section: {"auths": {"HOST": {"auth": base64("user:password")} | {"username", "password"}}}.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DOCKER_HUB } from './reference.js';
import { RegistryError } from '../errors/errors.js';

export interface Credentials {
  username: string;
  password: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
}

function configPath(): string {
  return join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
}

/** The keys a registry may be filed under: docker login writes Docker Hub as its v1 URL. */
function candidateKeys(registry: string): string[] {
  const keys = [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
  if (registry === DOCKER_HUB) keys.push('https://index.docker.io/v1/', 'index.docker.io', 'registry-1.docker.io');
  return keys;
}

function decode(entry: AuthEntry): Credentials | undefined {
  if (entry.auth) {
    const text = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  if (entry.username && entry.password !== undefined) return { username: entry.username, password: entry.password };
  return undefined;
}

export function dockerConfigCredentials(registry: string, path = configPath()): Credentials | undefined {
  let auths: Record<string, AuthEntry>;
  try {
    auths = (JSON.parse(readFileSync(path, 'utf8')) as { auths?: Record<string, AuthEntry> }).auths ?? {};
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RegistryError('unauthorized', `cannot read credentials from ${path}: ${(error as Error).message.split('\n')[0]}`);
  }
  for (const key of candidateKeys(registry)) {
    const entry = auths[key];
    const credentials = entry ? decode(entry) : undefined;
    if (credentials) return credentials;
  }
  return undefined;
}
