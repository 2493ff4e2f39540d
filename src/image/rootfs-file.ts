// Reading a small file of an unpacked rootfs (its /etc/passwd, /etc/group): found as the container would find it,
// symlinks followed inside the rootfs only, and read only when it is a regular file of a bounded size. Anything
// else in the image's place is refused: a fifo would block the reader for ever, a device (/dev/zero) never ends.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { fdPath, O_PATH, RootfsResolver } from './unpack-paths.js';
import { ImageConfigError } from '../errors/errors.js';

/** The content of the file at `components` in the rootfs; undefined when there is none. */
export function readRootfsFile(rootfs: string, components: string[], maxBytes: number): Buffer | undefined {
  const what = `the image's /${components.join('/')}`;
  const resolver = new RootfsResolver(rootfs);
  try {
    const place = resolver.existing(components);
    if (!place) return undefined;
    const node = openSync(fdPath(place.dir.fd, place.name), O_PATH | constants.O_NOFOLLOW);
    try {
      if (!fstatSync(node).isFile()) throw new ImageConfigError(`${what} is not a regular file`);
      const fd = openSync(fdPath(node), constants.O_RDONLY);
      try {
        const buffer = Buffer.allocUnsafe(maxBytes + 1);
        let length = 0;
        for (let read = -1; read !== 0 && length <= maxBytes; length += read) read = readSync(fd, buffer, length, buffer.length - length, null);
        if (length > maxBytes) throw new ImageConfigError(`${what} is larger than ${maxBytes} bytes`);
        return buffer.subarray(0, length);
      } finally {
        closeSync(fd);
      }
    } finally {
      closeSync(node);
    }
  } finally {
    resolver.close();
  }
}
