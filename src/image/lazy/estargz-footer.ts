// The footer of an eStargz blob: an empty gzip member whose extra field carries the offset of the TOC's gzip
// member as `%016x` + "STARGZ". The current footer (51 bytes) wraps it in an 'S','G' subfield; the legacy one
// (47 bytes, written by the first stargz tools) has the 22 bytes as the whole extra field.

export const FOOTER_SIZE = 51;
export const LEGACY_FOOTER_SIZE = 47;

/** The gzip header of a member with FEXTRA set and nothing else (no name, comment or header CRC). */
function extraField(member: Buffer): Buffer | undefined {
  if (member.length < 12 || member[0] !== 0x1f || member[1] !== 0x8b || member[2] !== 8) return undefined;
  if (member[3] !== 0x04) return undefined;
  const length = member.readUInt16LE(10);
  if (12 + length > member.length) return undefined;
  return member.subarray(12, 12 + length);
}

function tocOffsetFrom(payload: Buffer): number | undefined {
  if (payload.length !== 22 || payload.toString('latin1', 16) !== 'STARGZ') return undefined;
  const hex = payload.toString('latin1', 0, 16);
  if (!/^[0-9a-f]{16}$/.test(hex)) return undefined;
  const offset = Number.parseInt(hex, 16);
  return Number.isSafeInteger(offset) ? offset : undefined;
}

/**
 * The TOC offset and the footer's size, from the blob's last bytes (at least 51, or 47 for a blob that short);
 * undefined when they are not an eStargz footer.
 */
export function parseFooter(tail: Buffer): { tocOffset: number; footerSize: number } | undefined {
  if (tail.length >= FOOTER_SIZE) {
    const extra = extraField(tail.subarray(tail.length - FOOTER_SIZE));
    if (extra && extra.length === 26 && extra[0] === 0x53 && extra[1] === 0x47 && extra.readUInt16LE(2) === 22) {
      const tocOffset = tocOffsetFrom(extra.subarray(4));
      if (tocOffset !== undefined) return { tocOffset, footerSize: FOOTER_SIZE };
    }
  }
  if (tail.length >= LEGACY_FOOTER_SIZE) {
    const extra = extraField(tail.subarray(tail.length - LEGACY_FOOTER_SIZE));
    const tocOffset = extra && tocOffsetFrom(extra);
    if (tocOffset !== undefined) return { tocOffset, footerSize: LEGACY_FOOTER_SIZE };
  }
  return undefined;
}

/** A footer of either kind for `tocOffset` (the writer's side, and tests of the legacy one). */
export function makeFooter(tocOffset: number, legacy = false): Buffer {
  const payload = Buffer.from(`${tocOffset.toString(16).padStart(16, '0')}STARGZ`, 'latin1');
  const extra = legacy ? payload : Buffer.concat([Buffer.from([0x53, 0x47, 22, 0]), payload]);
  const header = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, extra.length, 0]);
  // An empty deflate stream (a final stored block of no bytes), then CRC32 and size of nothing.
  const empty = Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, extra, empty]);
}
