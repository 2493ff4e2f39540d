// SHA-256 of the guest's files (a 53 MB kernel takes ~0.2 s to hash), kept per file identity: device, inode, size,
// mtime and ctime, which any write to the file changes (ctime cannot be set back). Kept in memory and, across
// invocations, in a root-only file under /run.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../../host/atomic-file.js';

export const DIGEST_CACHE_FILE = process.env.RUNBOX_ENCLAVE_DIGEST_CACHE ?? '/run/runbox-enclave/file-digests.json';

type Cache = Record<string, { identity: string; sha256: string }>;
const known: Cache = {};

function loadCache(): Cache {
  try {
    return JSON.parse(readFileSync(DIGEST_CACHE_FILE, 'utf8')) as Cache;
  } catch {
    return {};
  }
}

/** The file's SHA-256, hashed from the very open file whose identity keys the cache. */
export function fileSha256(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const stat = fstatSync(fd, { bigint: true });
    const identity = [stat.dev, stat.ino, stat.size, stat.mtimeNs, stat.ctimeNs].join(':');
    const cached = known[path] ?? loadCache()[path];
    if (cached?.identity === identity) return Buffer.from(cached.sha256, 'hex');
    const hash = createHash('sha256');
    const chunk = Buffer.alloc(1 << 20);
    for (let n; (n = readSync(fd, chunk)) > 0;) hash.update(chunk.subarray(0, n));
    const digest = hash.digest();
    known[path] = { identity, sha256: digest.toString('hex') };
    try {
      mkdirSync(dirname(DIGEST_CACHE_FILE), { recursive: true, mode: 0o700 });
      writeFileAtomic(DIGEST_CACHE_FILE, JSON.stringify({ ...loadCache(), [path]: known[path] }), 0o600, false);
    } catch {
      // not root: hashed again next time
    }
    return digest;
  } finally {
    closeSync(fd);
  }
}
