import test from 'ava';
import { randomBytes } from 'node:crypto';
import { encodeFrame, FrameDecoder, FrameType, HEADER_LENGTH, MAX_PAYLOAD } from '../src/agent-client/agent-frame.js';
import { encodeRecords, Records } from '../src/agent-client/agent-records.js';

test('frames survive any chunking of the byte stream', (t) => {
  const frames = [
    encodeFrame(1, FrameType.Request, encodeRecords([['op', 'hello']])),
    encodeFrame(7, FrameType.Stdout, Buffer.from('some output\n')),
    encodeFrame(0, FrameType.Event, encodeRecords([['event', 'exit'], ['exit_status', '3']])),
    encodeFrame(9, FrameType.Stdin, Buffer.alloc(0)),
  ];
  const stream = Buffer.concat(frames);
  for (let size = 1; size <= stream.length; size += 3) {
    const decoder = new FrameDecoder();
    const out = [];
    for (let i = 0; i < stream.length; i += size) out.push(...decoder.push(stream.subarray(i, i + size)));
    t.deepEqual(out.map((f) => [f.id, f.type, f.payload.toString('latin1')]), [
      [1, FrameType.Request, 'op=hello\0'],
      [7, FrameType.Stdout, 'some output\n'],
      [0, FrameType.Event, 'event=exit\0exit_status=3\0'],
      [9, FrameType.Stdin, ''],
    ]);
  }
});

test('a frame over 4 MiB is refused on both sides', (t) => {
  t.throws(() => encodeFrame(1, FrameType.Stdin, Buffer.alloc(MAX_PAYLOAD + 1)), { message: /exceeds/ });
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt32BE(MAX_PAYLOAD + 1, 0);
  header.writeUInt8(FrameType.Response, 8);
  t.throws(() => new FrameDecoder().push(header), { message: /limit/ });
});

test('random and truncated input never crashes the decoder: frames or a clean error', (t) => {
  for (let round = 0; round < 500; round++) {
    const decoder = new FrameDecoder();
    const junk = randomBytes(1 + (round % 64));
    try {
      const frames = decoder.push(junk);
      for (const frame of frames) t.true(frame.type >= FrameType.Request && frame.type <= FrameType.Stderr);
    } catch (error) {
      t.regex((error as Error).message, /agent sent a frame/);
    }
  }
  const whole = encodeFrame(3, FrameType.Response, encodeRecords([['ok', '1']]));
  t.deepEqual(new FrameDecoder().push(whole.subarray(0, whole.length - 1)), []);
});

test('records keep lists in order and values with = intact', (t) => {
  const records = Records.decode(encodeRecords([['env', 'A=1'], ['arg', 'x'], ['env', 'B=2=3']]));
  t.deepEqual(records.all('env'), ['A=1', 'B=2=3']);
  t.is(records.get('arg'), 'x');
  t.throws(() => encodeRecords([['arg', 'a\0b']]), { message: /NUL/ });
  t.throws(() => Records.decode(Buffer.from('novalue\0')), { message: /malformed/ });
});
