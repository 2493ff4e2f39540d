import test from 'ava';
import { randomBytes } from 'node:crypto';
import { TtrpcFrameTooLargeError } from '../src/errors/errors.js';
import { encodeMessage } from '../src/rpc/protos.js';
import { encodeFrame, type Frame, FrameDecoder, HEADER_LENGTH, MAX_DATA_LENGTH, MessageType } from '../src/rpc/ttrpc-frame.js';
import { RawConnection, TASK, taskServer } from './helpers/rpc.js';

/** Feeds bytes to a decoder in the given chunk sizes (cycled); returns what came out. */
function decodeChunked(bytes: Buffer, sizes: number[]): { frames: Frame[]; errors: TtrpcFrameTooLargeError[]; buffered: number } {
  const frames: Frame[] = [];
  const errors: TtrpcFrameTooLargeError[] = [];
  const decoder = new FrameDecoder(
    (frame) => frames.push({ ...frame, data: Buffer.from(frame.data) }),
    (error) => errors.push(error),
  );
  for (let offset = 0, i = 0; offset < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    decoder.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return { frames, errors, buffered: decoder.buffered };
}

/** Random chunk sizes from 1 byte to a few KiB, the mix a socket produces under load. */
function randomSizes(count: number): number[] {
  return Array.from({ length: count }, () => (Math.random() < 0.5 ? 1 + Math.floor(Math.random() * 16) : 1 + Math.floor(Math.random() * 4096)));
}

test('frames come out whole and in order whatever the chunking, including empty and 4 MiB ones', (t) => {
  const sent = [
    { streamId: 1, type: MessageType.REQUEST, flags: 0, data: encodeMessage('ttrpc.Request', { service: TASK, method: 'State' }) },
    { streamId: 1, type: MessageType.RESPONSE, flags: 0, data: Buffer.alloc(0) },
    { streamId: 3, type: MessageType.DATA, flags: 0x5, data: randomBytes(70_000) },
    { streamId: 0xffffffff, type: 0xff, flags: 0xff, data: randomBytes(MAX_DATA_LENGTH) },
    { streamId: 5, type: MessageType.REQUEST, flags: 0, data: Buffer.from('x') },
  ];
  const check = (frames: Frame[], expected: typeof sent, label: string) => {
    t.is(frames.length, expected.length, label);
    frames.forEach((frame, i) => {
      t.like(frame, { streamId: expected[i]!.streamId, type: expected[i]!.type, flags: expected[i]!.flags }, label);
      t.true(frame.data.equals(expected[i]!.data), `frame ${i}, ${label}`);
    });
  };
  const small = sent.filter((f) => f.data.length < MAX_DATA_LENGTH);
  // Byte-sized chunks on the small frames; larger and random ones on all (4 MiB byte by byte is only slow).
  const cases: [typeof sent, number[]][] = [
    [small, [1]],
    [small, [HEADER_LENGTH - 1]],
    [small, [HEADER_LENGTH + 1, 3]],
    [sent, [Number.MAX_SAFE_INTEGER]],
    [sent, [65536]],
    [sent, randomSizes(200)],
    [sent, randomSizes(200)],
  ];
  for (const [frames, sizes] of cases) {
    const stream = Buffer.concat(frames.map((f) => encodeFrame(f.streamId, f.type, f.flags, f.data)));
    const decoded = decodeChunked(stream, sizes);
    t.deepEqual(decoded.errors, []);
    t.is(decoded.buffered, 0);
    check(decoded.frames, frames, `chunks of ${sizes.slice(0, 3).join(',')}`);
  }
});

test('a header announcing more than 4 MiB is reported once, before its data arrives, and nothing after it is decoded', (t) => {
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt32BE(MAX_DATA_LENGTH + 1, 0);
  header.writeUInt32BE(7, 4);
  const after = encodeFrame(9, MessageType.REQUEST, 0, Buffer.from('ignored'));
  for (const sizes of [[1], [HEADER_LENGTH], randomSizes(50)]) {
    const { frames, errors } = decodeChunked(Buffer.concat([encodeFrame(1, MessageType.REQUEST, 0, Buffer.from('ok')), header, after, after]), sizes);
    t.is(frames.length, 1);
    t.is(errors.length, 1);
    t.is(errors[0]!.streamId, 7);
    t.is(errors[0]!.length, MAX_DATA_LENGTH + 1);
  }
  t.throws(() => encodeFrame(1, MessageType.REQUEST, 0, Buffer.alloc(MAX_DATA_LENGTH + 1)), { instanceOf: TtrpcFrameTooLargeError });
});

test('fuzz: random bytes never make the decoder throw, and every frame it yields respects the limit', (t) => {
  for (let round = 0; round < 300; round++) {
    // Small lengths in the first byte pairs keep some random headers plausible, so frames do come out.
    const bytes = randomBytes(1 + Math.floor(Math.random() * 20_000));
    if (round % 2) for (let i = 0; i + 4 <= bytes.length; i += 97) bytes.writeUInt16BE(0, i);
    const { frames, errors, buffered } = decodeChunked(bytes, randomSizes(100));
    t.true(errors.length <= 1);
    t.true(frames.every((f) => f.data.length <= MAX_DATA_LENGTH));
    const consumed = frames.reduce((sum, f) => sum + HEADER_LENGTH + f.data.length, 0);
    // Whatever is not in a frame is a frame begun (or refused): the decoder loses and invents nothing.
    if (errors.length === 0) t.is(consumed + buffered, bytes.length);
  }
});

test('fuzz: a stream cut at any point yields the frames before the cut and reports the rest as unfinished', (t) => {
  const stream = Buffer.concat(Array.from({ length: 20 }, (_, i) => encodeFrame(2 * i + 1, MessageType.REQUEST, 0, randomBytes(Math.floor(Math.random() * 300)))));
  const ends: number[] = [];
  for (let end = 0, i = 0; i < 20; i++) ends.push((end += HEADER_LENGTH + stream.readUInt32BE(end)));
  for (let round = 0; round < 300; round++) {
    const cut = Math.floor(Math.random() * stream.length);
    const { frames, errors, buffered } = decodeChunked(stream.subarray(0, cut), randomSizes(20));
    const whole = ends.filter((end) => end <= cut);
    t.deepEqual(errors, []);
    t.is(frames.length, whole.length);
    t.is(buffered, cut - (whole.at(-1) ?? 0));
  }
});

test('fuzz: a live server survives random and truncated input on its connections and keeps serving', async (t) => {
  const { path, client } = await taskServer(t, { State: async ({ id }) => ({ id }) });
  const request = encodeFrame(1, MessageType.REQUEST, 0, encodeMessage('ttrpc.Request', { service: TASK, method: 'State', payload: encodeMessage('containerd.task.v2.StateRequest', { id: 'x' }) }));
  const inputs = [
    ...Array.from({ length: 20 }, () => randomBytes(1 + Math.floor(Math.random() * 5000))),
    ...Array.from({ length: 10 }, () => {
      // A valid header with random data: the server must answer with an error, not fall over.
      const data = randomBytes(Math.floor(Math.random() * 200));
      return encodeFrame(1, MessageType.REQUEST, 0, data);
    }),
    ...Array.from({ length: 10 }, () => request.subarray(0, Math.floor(Math.random() * request.length))),
  ];
  for (const input of inputs) {
    const raw = await RawConnection.open(t, path);
    raw.socket.end(input);
    await raw.closed;
  }
  t.like(await client.call(TASK, 'State', { id: 'alive' }), { id: 'alive' });
});
