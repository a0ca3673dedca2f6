/**
 * Frame decoding in read-into mode (net.Socket's `onread`): the decoder lends the buffers the
 * socket reads into. Frames survive any read sizes, a large bulk is read straight into its own
 * buffer, and hostile lengths are refused or bounded as in push mode.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, StriaError } from '../src/common/errno.js';
import { DIRECT_BULK_EAGER_MAX_BYTES, DIRECT_BULK_MIN_BYTES, encodeFrame, FrameDecoder, type DecodedFrame } from '../src/lnet/frame.js';
import { MsgType } from '../src/ptlrpc/opcodes.js';
import type { MsgHeader } from '../src/ptlrpc/types.js';
import { mulberry32 } from './helpers/frame-fuzzer.js';

const MiB = 1024 * 1024;
const LIMITS = { maxHeaderBytes: 64 * 1024, maxBulkBytes: 16 * MiB };

/** What a socket does with a lent buffer: copies up to `max` of the next stream bytes into it. */
function feed(d: DecodedFrame[], decoder: FrameDecoder, stream: Buffer, nextSize: () => number): number {
  let reads = 0;
  for (let off = 0; off < stream.length && reads < 1_000_000; reads++) {
    const into = decoder.readBuffer();
    const n = Math.min(into.length, nextSize(), stream.length - off);
    stream.copy(into, 0, off, off + n);
    off += n;
    d.push(...decoder.filled(n));
  }
  return reads;
}

function header(xid: number, body?: unknown): MsgHeader {
  return body === undefined ? { v: 1, t: MsgType.REPLY, opc: 3, xid } : { v: 1, t: MsgType.REPLY, opc: 3, xid, b: body };
}

test('frames of every bulk size survive any read sizes', () => {
  const rnd = mulberry32(7);
  for (let round = 0; round < 20; round++) {
    const sent: Array<{ header: MsgHeader; bulk: Buffer | undefined }> = [];
    const parts: Buffer[] = [];
    for (let i = 0; i < 1 + Math.floor(rnd() * 6); i++) {
      const sizes = [0, 100, 4096, DIRECT_BULK_MIN_BYTES - 1, DIRECT_BULK_MIN_BYTES, 300_000, MiB + 17];
      const size = sizes[Math.floor(rnd() * sizes.length)]!;
      const bulk = size === 0 ? undefined : Buffer.alloc(size, (round * 7 + i) % 251);
      if (bulk) for (let k = 0; k < bulk.length; k += 997) bulk[k] = Math.floor(rnd() * 256);
      const h = header(round * 100 + i, rnd() < 0.5 ? { n: i, s: 'x'.repeat(Math.floor(rnd() * 200)) } : undefined);
      sent.push({ header: h, bulk });
      parts.push(...encodeFrame(h, bulk));
    }
    const decoder = new FrameDecoder(LIMITS);
    const got: DecodedFrame[] = [];
    feed(got, decoder, Buffer.concat(parts), () => (rnd() < 0.3 ? 1 + Math.floor(rnd() * 20) : 1 + Math.floor(rnd() * 200_000)));
    assert.equal(got.length, sent.length, `round ${round}: every frame decoded`);
    for (let i = 0; i < sent.length; i++) {
      assert.deepEqual(got[i]!.header, sent[i]!.header);
      assert.equal(got[i]!.bulk === undefined, sent[i]!.bulk === undefined);
      if (sent[i]!.bulk) assert.ok(got[i]!.bulk!.equals(sent[i]!.bulk!), `round ${round} frame ${i} bulk bytes`);
    }
    assert.equal(decoder.pendingBytes, 0);
  }
});

test('a large bulk is read straight into the buffer it is delivered in', () => {
  const bulk = Buffer.alloc(MiB, 9);
  const [head] = encodeFrame(header(1), bulk);
  const decoder = new FrameDecoder(LIMITS);
  // the header and the first bytes of the bulk arrive together, as they do from a socket
  const first = decoder.readBuffer();
  head!.copy(first);
  bulk.copy(first, head!.length, 0, 1000);
  assert.deepEqual(decoder.filled(head!.length + 1000), []);
  // from now on the socket reads into the bulk's own buffer, which is exactly what is left
  const into = decoder.readBuffer();
  assert.equal(into.length, MiB - 1000);
  bulk.copy(into, 0, 1000);
  const frames = decoder.filled(into.length);
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.bulk!.buffer, into.buffer, 'no copy: the delivered bulk is the buffer the socket filled');
  assert.ok(frames[0]!.bulk!.equals(bulk));
});

test('filled() must match what was lent', () => {
  const decoder = new FrameDecoder(LIMITS);
  assert.throws(() => decoder.filled(1), (e: unknown) => e instanceof StriaError && e.code === 'BAD_READ');
  const into = decoder.readBuffer();
  assert.throws(() => decoder.filled(into.length + 1), (e: unknown) => e instanceof StriaError && e.code === 'BAD_READ');
});

test('hostile lengths: refused from the prefix; a huge announced bulk is not lent before a quarter arrived', () => {
  const big = new FrameDecoder({ maxHeaderBytes: 1024, maxBulkBytes: 64 * MiB });
  const f = encodeFrame(header(1))[0]!;
  f.writeUInt32BE(0xffffffff, 8);
  const into = big.readBuffer();
  f.copy(into);
  assert.throws(() => big.filled(f.length), (e: unknown) => e instanceof StriaError && e.errno === Errno.EPROTO && e.code === 'FRAME_TOO_LARGE');

  const d = new FrameDecoder({ maxHeaderBytes: 1024, maxBulkBytes: 64 * MiB });
  const announced = DIRECT_BULK_EAGER_MAX_BYTES * 4;
  const g = encodeFrame(header(2))[0]!;
  g.writeUInt32BE(announced, 8);
  const lent = d.readBuffer();
  g.copy(lent);
  assert.deepEqual(d.filled(g.length), []);
  const next = d.readBuffer();
  assert.ok(next.length < MiB, `the ${announced} bytes announced are not lent yet (got ${next.length})`);
});
