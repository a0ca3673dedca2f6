/**
 * Frame codec: encode/decode round trips with random headers and bulk cut into random
 * chunk sizes, the zero-copy bulk rule, and rejection of hostile prefixes and headers
 * before anything large is allocated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pack } from 'msgpackr';
import { Errno, StriaError } from '../src/common/errno.js';
import { encodeFrame, FrameDecoder, validateHeader } from '../src/lnet/frame.js';
import { bulkChecksum } from '../src/ptlrpc/checksum.js';
import { MsgType } from '../src/ptlrpc/opcodes.js';
import { FRAME_MAGIC, FRAME_PREFIX_BYTES, type MsgHeader } from '../src/ptlrpc/types.js';
import { mulberry32 } from './helpers/frame-fuzzer.js';

const LIMITS = { maxHeaderBytes: 64 * 1024, maxBulkBytes: 4 * 1024 * 1024 };

function randomHeader(rnd: () => number): MsgHeader {
  const int = (max: number): number => Math.floor(rnd() * max);
  const types = [MsgType.REQUEST, MsgType.REPLY, MsgType.ERROR];
  const h: MsgHeader = { v: 1, t: types[int(3)]!, opc: int(1000), xid: Date.now() * 1024 + int(1e6) };
  if (rnd() < 0.5) h.h = int(2 ** 40);
  if (rnd() < 0.5) h.st = -int(200);
  if (rnd() < 0.5) h.code = 'CODE_' + int(100);
  if (rnd() < 0.5) h.msg = 'message ' + 'é€'.repeat(int(20));
  if (rnd() < 0.5) h.fl = int(8);
  if (rnd() < 0.5) h.cc = int(100);
  if (rnd() < 0.5) h.tn = int(2 ** 50);
  if (rnd() < 0.5) h.lc = int(2 ** 50);
  if (rnd() < 0.5) h.to = int(100_000);
  if (rnd() < 0.5) h.svc = rnd() * 1000;
  if (rnd() < 0.5) h.job = 'job.' + int(1000);
  if (rnd() < 0.5) h.uid = int(2 ** 32);
  if (rnd() < 0.5) h.gid = int(2 ** 32);
  if (rnd() < 0.5) h.ck = int(2 ** 32);
  if (rnd() < 0.5) h.ckr = rnd() < 0.5;
  if (rnd() < 0.7) h.b = { name: 'x'.repeat(int(300)), n: int(1e9), list: [1, 'two', { three: 3 }], nested: { ok: true, none: null } };
  return h;
}

function randomBulk(rnd: () => number): Buffer | Buffer[] | undefined {
  const r = rnd();
  const one = (): Buffer => {
    const b = Buffer.allocUnsafe(Math.floor(rnd() * 200_000));
    for (let i = 0; i < b.length; i += 97) b[i] = Math.floor(rnd() * 256);
    return b;
  };
  if (r < 0.25) return undefined;
  if (r < 0.6) return one();
  return [one(), one(), one()];
}

/** Cuts the encoded frames into chunks of random sizes (1 byte to 100 KiB). */
function rechunk(parts: Buffer[], rnd: () => number): Buffer[] {
  const all = Buffer.concat(parts);
  const chunks: Buffer[] = [];
  for (let off = 0; off < all.length; ) {
    const size = rnd() < 0.3 ? 1 + Math.floor(rnd() * 16) : 1 + Math.floor(rnd() * 100_000);
    chunks.push(all.subarray(off, off + size));
    off += size;
  }
  return chunks;
}

test('random headers and bulks survive any chunking', () => {
  const rnd = mulberry32(42);
  for (let round = 0; round < 30; round++) {
    const sent: Array<{ header: MsgHeader; bulk: Buffer | undefined }> = [];
    const parts: Buffer[] = [];
    const frames = 1 + Math.floor(rnd() * 8);
    for (let i = 0; i < frames; i++) {
      const header = randomHeader(rnd);
      const bulk = randomBulk(rnd);
      const joined = bulk === undefined ? undefined : Buffer.concat(Array.isArray(bulk) ? bulk : [bulk]);
      sent.push({ header, bulk: joined && joined.length > 0 ? joined : undefined });
      parts.push(...encodeFrame(header, bulk));
    }
    const decoder = new FrameDecoder(LIMITS);
    const got = rechunk(parts, rnd).flatMap((c) => decoder.push(c));
    assert.equal(got.length, sent.length, `round ${round}: every frame decoded`);
    for (let i = 0; i < sent.length; i++) {
      assert.deepEqual(got[i]!.header, sent[i]!.header, `round ${round} frame ${i} header`);
      assert.equal(got[i]!.bulk === undefined, sent[i]!.bulk === undefined, `round ${round} frame ${i} bulk presence`);
      if (sent[i]!.bulk) assert.ok(got[i]!.bulk!.equals(sent[i]!.bulk!), `round ${round} frame ${i} bulk bytes`);
    }
    assert.equal(decoder.pendingBytes, 0);
  }
});

test('encodeFrame passes bulk buffers through without copying', () => {
  const a = Buffer.from('first part');
  const b = Buffer.from('second part');
  const parts = encodeFrame({ v: 1, t: MsgType.REQUEST, opc: 4, xid: 1 }, [a, b]);
  assert.equal(parts.length, 3);
  assert.equal(parts[1], a);
  assert.equal(parts[2], b);
  assert.equal(parts[0]!.readUInt32BE(0), FRAME_MAGIC);
  assert.equal(parts[0]!.readUInt32BE(4), parts[0]!.length - FRAME_PREFIX_BYTES);
  assert.equal(parts[0]!.readUInt32BE(8), a.length + b.length);
});

test('a bulk inside one chunk comes back as a subarray of it; a split bulk is assembled once', () => {
  const bulk = Buffer.alloc(50_000, 7);
  const parts = encodeFrame({ v: 1, t: MsgType.REPLY, opc: 3, xid: 9 }, bulk);
  const whole = Buffer.concat(parts);

  const one = new FrameDecoder(LIMITS).push(whole);
  assert.equal(one.length, 1);
  assert.equal(one[0]!.bulk!.buffer, whole.buffer, 'bulk shares memory with the received chunk');
  assert.equal(one[0]!.bulk!.byteOffset, whole.byteOffset + parts[0]!.length);

  // header in one chunk, the whole bulk in the next: still no copy
  const d2 = new FrameDecoder(LIMITS);
  assert.deepEqual(d2.push(whole.subarray(0, parts[0]!.length)), []);
  const second = whole.subarray(parts[0]!.length);
  const got2 = d2.push(second);
  assert.equal(got2[0]!.bulk!.buffer, second.buffer);

  // bulk split across chunks: a fresh buffer of exactly bulkLen bytes
  const d3 = new FrameDecoder(LIMITS);
  const cut = parts[0]!.length + 20_000;
  assert.deepEqual(d3.push(whole.subarray(0, cut)), []);
  const got3 = d3.push(whole.subarray(cut));
  assert.equal(got3.length, 1);
  assert.notEqual(got3[0]!.bulk!.buffer, whole.buffer);
  assert.equal(got3[0]!.bulk!.length, bulk.length);
  assert.ok(got3[0]!.bulk!.equals(bulk));
});

function expectProto(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StriaError, `StriaError expected, got ${String(e)}`);
    assert.equal(e.errno, Errno.EPROTO);
    assert.equal(e.code, code);
    return true;
  });
}

function prefix(magic: number, headerLen: number, bulkLen: number): Buffer {
  const b = Buffer.alloc(FRAME_PREFIX_BYTES);
  b.writeUInt32BE(magic, 0);
  b.writeUInt32BE(headerLen, 4);
  b.writeUInt32BE(bulkLen, 8);
  return b;
}

test('wrong magic is rejected as soon as 4 bytes arrived', () => {
  expectProto(() => new FrameDecoder(LIMITS).push(Buffer.from('GET / HTTP/1.1\r\n')), 'BAD_MAGIC');
  expectProto(() => new FrameDecoder(LIMITS).push(Buffer.from([0xd3, 0x0b, 0xd0, 0x0b])), 'BAD_MAGIC');
  const d = new FrameDecoder(LIMITS);
  assert.deepEqual(d.push(Buffer.from([0x0b, 0xd0])), []);
  expectProto(() => d.push(Buffer.from([0x0b, 0xd4])), 'BAD_MAGIC');
  // a failed decoder stays failed
  expectProto(() => d.push(encodeFrame({ v: 1, t: MsgType.REQUEST, opc: 400, xid: 1 })[0]!), 'BAD_MAGIC');
});

test('absurd lengths are rejected from the prefix alone', () => {
  expectProto(() => new FrameDecoder(LIMITS).push(prefix(FRAME_MAGIC, LIMITS.maxHeaderBytes + 1, 0)), 'FRAME_TOO_LARGE');
  expectProto(() => new FrameDecoder(LIMITS).push(prefix(FRAME_MAGIC, 10, 0xffffffff)), 'FRAME_TOO_LARGE');
  expectProto(() => new FrameDecoder(LIMITS).push(prefix(FRAME_MAGIC, 0xffffffff, 0xffffffff)), 'FRAME_TOO_LARGE');
  expectProto(() => new FrameDecoder(LIMITS).push(prefix(FRAME_MAGIC, 0, 0)), 'BAD_HEADER');
});

test('an announced bulk is not allocated before a good part of it has arrived', () => {
  const MiB = 1024 * 1024;
  const announced = 512 * MiB;
  const d = new FrameDecoder({ maxHeaderBytes: 1024, maxBulkBytes: 1024 * MiB });
  const f = encodeFrame({ v: 1, t: MsgType.REQUEST, opc: 4, xid: 1 })[0]!;
  f.writeUInt32BE(announced, 8);
  const before = process.memoryUsage().arrayBuffers;
  assert.deepEqual(d.push(f), []);
  for (let i = 0; i < 4; i++) assert.deepEqual(d.push(Buffer.alloc(MiB, i)), []);
  assert.equal(d.pendingBytes, 4 * MiB);
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 * MiB, 'the 512 MiB announced were not allocated');

  // a smaller bulk trickling in is assembled exactly once it is complete
  const d2 = new FrameDecoder(LIMITS);
  const bulk = Buffer.alloc(100_000, 3);
  const whole = Buffer.concat(encodeFrame({ v: 1, t: MsgType.REQUEST, opc: 4, xid: 2 }, bulk));
  const got = [];
  for (let off = 0; off < whole.length; off += 1000) got.push(...d2.push(whole.subarray(off, off + 1000)));
  assert.equal(got.length, 1);
  assert.ok(got[0]!.bulk!.equals(bulk));
});

function frameWithHeaderBytes(bytes: Buffer): Buffer {
  return Buffer.concat([prefix(FRAME_MAGIC, bytes.length, 0), bytes]);
}

test('headers that are not a map of the right field types are rejected', () => {
  const base = { v: 1, t: MsgType.REQUEST, opc: 4, xid: 1 };
  const bad: unknown[] = [
    [1, 2, 3],
    'a string',
    42,
    null,
    Buffer.from('bin'),
    new Date(0),
    { ...base, v: '1' },
    { ...base, t: 1234 },
    { ...base, opc: -1 },
    { ...base, opc: 1.5 },
    { ...base, xid: 'x' },
    { ...base, xid: -5 },
    { t: 4711, opc: 1, xid: 1 },
    { ...base, h: 'handle' },
    { ...base, st: 5 },
    { ...base, code: 12 },
    { ...base, msg: { m: 1 } },
    { ...base, fl: -1 },
    { ...base, to: 'soon' },
    { ...base, uid: 2 ** 33 },
    { ...base, ck: 2 ** 32 },
    { ...base, ckr: 1 },
    { ...base, job: ['a'] },
    { ...base, svc: Number.NaN },
    { ...base, tn: 2 ** 60 },
  ];
  for (const h of bad) {
    expectProto(() => new FrameDecoder(LIMITS).push(frameWithHeaderBytes(pack(h))), 'BAD_HEADER');
  }
  // not MessagePack at all, and trailing garbage after a valid map
  expectProto(() => new FrameDecoder(LIMITS).push(frameWithHeaderBytes(Buffer.from([0xc1]))), 'BAD_HEADER');
  expectProto(() => new FrameDecoder(LIMITS).push(frameWithHeaderBytes(Buffer.concat([pack(base), Buffer.from([1])]))), 'BAD_HEADER');
  expectProto(() => new FrameDecoder(LIMITS).push(frameWithHeaderBytes(Buffer.from('dd7fffffff', 'hex'))), 'BAD_HEADER');
  // a 64-bit integer beyond JS precision decodes to a BigInt: not a valid xid
  expectProto(
    () => new FrameDecoder(LIMITS).push(frameWithHeaderBytes(Buffer.concat([Buffer.from('84a17601a174cd1267a36f706304a3786964cf', 'hex'), Buffer.alloc(8, 0xff)]))),
    'BAD_HEADER',
  );
});

test('unknown header keys are ignored and dropped', () => {
  const h = validateHeader({ v: 1, t: MsgType.REPLY, opc: 3, xid: 5, extra: 'ignored', b: { k: 1 } });
  assert.deepEqual(h, { v: 1, t: MsgType.REPLY, opc: 3, xid: 5, b: { k: 1 } });
  const [first] = encodeFrame({ v: 1, t: MsgType.REQUEST, opc: 400, xid: 2, h: undefined });
  const [got] = new FrameDecoder(LIMITS).push(first!);
  assert.deepEqual(got!.header, { v: 1, t: MsgType.REQUEST, opc: 400, xid: 2 });
});

test('bulk checksums chain across buffers (crc32c)', () => {
  const a = Buffer.from('123456');
  const b = Buffer.from('789');
  assert.equal(bulkChecksum(Buffer.from('123456789')), 0xe3069283);
  assert.equal(bulkChecksum([a, b]), 0xe3069283);
  assert.equal(bulkChecksum(undefined), 0);
});
