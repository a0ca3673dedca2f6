/** lustre.lov encoding: lov_user_md v1/v3 byte layout (reference §2.3) and decoding of untrusted blobs. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LOV_USER_MAGIC_V1, LOV_USER_MAGIC_V3, type Raid0Layout } from '../src/common/layout.js';
import { decodeLovUser, encodeLovEA, encodeLovTemplate } from '../src/mds/lov-xattr.js';

const fid = { seq: 0x200000400, oid: 5, ver: 0 };
const MiB = 1 << 20;

test('a one-stripe file encodes byte for byte as lov_user_md_v1', () => {
  const layout: Raid0Layout = { pattern: 'raid0', stripeSize: MiB, stripeCount: 1, stripeOffset: -1, layoutGen: 2, objects: [{ ostIdx: 3, seq: 0x100030000, oid: 0x1f }] };
  const expected = Buffer.from(
    [
      'd00bd10b', '01000000', // magic, pattern RAID0
      '0004000002000000', '05000000', '00000000', // lmm_oi = the file's FID
      '00001000', '0100', '0200', // stripe size, count, layout gen
      '0000030001000000', '1f000000', '00000000', '00000000', '03000000', // object: FID form, ost_gen, ost_idx
    ].join(''),
    'hex',
  );
  assert.deepEqual(encodeLovEA(layout, fid), expected);
});

test('a pooled, striped file encodes as v3 with the pool name and every object', () => {
  const objects = Array.from({ length: 4 }, (_, i) => ({ ostIdx: i * 2, seq: 0x100000000 + i * 2 * 0x10000, oid: 1000 + i }));
  const layout: Raid0Layout = { pattern: 'raid0', stripeSize: 4 * MiB, stripeCount: 4, stripeOffset: 0, pool: 'flash', layoutGen: 0x12345, objects };
  const b = encodeLovEA(layout, fid);
  assert.equal(b.length, 48 + 4 * 24);
  assert.equal(b.readUInt32LE(0), LOV_USER_MAGIC_V3);
  assert.equal(b.readUInt32LE(4), 1);
  assert.equal(b.readBigUInt64LE(8), BigInt(fid.seq));
  assert.equal(b.readUInt32LE(16), fid.oid);
  assert.equal(b.readUInt32LE(24), 4 * MiB);
  assert.equal(b.readUInt16LE(28), 4);
  assert.equal(b.readUInt16LE(30), 0x2345, 'layout generation, truncated to its u16 field');
  assert.equal(b.subarray(32, 48).toString('latin1'), 'flash' + '\0'.repeat(11));
  objects.forEach((o, i) => {
    const at = 48 + i * 24;
    assert.equal(b.readBigUInt64LE(at), BigInt(o.seq));
    assert.equal(b.readUInt32LE(at + 8), o.oid);
    assert.equal(b.readUInt32LE(at + 12), 0);
    assert.equal(b.readUInt32LE(at + 16), 0);
    assert.equal(b.readUInt32LE(at + 20), o.ostIdx);
  });
});

test('a released file has the released flag, its stripe count and no objects', () => {
  const b = encodeLovEA({ pattern: 'released', stripeSize: MiB, stripeCount: 2, stripeOffset: -1, layoutGen: 7, objects: [] }, fid);
  assert.equal(b.length, 32);
  assert.equal(b.readUInt32LE(4), 0x80000001);
  assert.equal(b.readUInt16LE(28), 2);
});

test('directory templates: unset fields read as 0 and 0xffff, -1 counts as 0xffff, the FID is zero', () => {
  const empty = encodeLovTemplate({});
  assert.equal(empty.length, 32);
  assert.equal(empty.readUInt32LE(0), LOV_USER_MAGIC_V1);
  assert.equal(empty.readUInt32LE(4), 1);
  assert.ok(empty.subarray(8, 24).equals(Buffer.alloc(16)));
  assert.equal(empty.readUInt32LE(24), 0);
  assert.equal(empty.readUInt16LE(28), 0);
  assert.equal(empty.readUInt16LE(30), 0xffff);
  const full = encodeLovTemplate({ stripeSize: 2 * MiB, stripeCount: -1, stripeOffset: 5, pool: 'ssd' });
  assert.equal(full.readUInt32LE(0), LOV_USER_MAGIC_V3);
  assert.equal(full.readUInt32LE(24), 2 * MiB);
  assert.equal(full.readUInt16LE(28), 0xffff);
  assert.equal(full.readUInt16LE(30), 5);
  assert.equal(full.subarray(32, 35).toString(), 'ssd');
});

test('decodeLovUser reads what encodeLovTemplate writes', () => {
  for (const tpl of [{}, { stripeSize: MiB }, { stripeCount: -1 }, { stripeCount: 2000, stripeOffset: 0 }, { pool: 'p' }, { stripeSize: 64 * 1024, stripeCount: 3, stripeOffset: 7, pool: 'a.b-c_d' }]) {
    assert.deepEqual(decodeLovUser(encodeLovTemplate(tpl)), { template: tpl });
  }
});

test('decodeLovUser accepts a file layout blob (objects ignored) and plain Uint8Arrays', () => {
  const layout: Raid0Layout = { pattern: 'raid0', stripeSize: MiB, stripeCount: 2, stripeOffset: -1, layoutGen: 0xffff, objects: [{ ostIdx: 0, seq: 1, oid: 1 }, { ostIdx: 1, seq: 2, oid: 2 }] };
  const blob = encodeLovEA(layout, fid);
  assert.deepEqual(decodeLovUser(blob).template, { stripeSize: MiB, stripeCount: 2 });
  assert.deepEqual(decodeLovUser(new Uint8Array(encodeLovTemplate({ stripeCount: 4 }))).template, { stripeCount: 4 });
});

test('decodeLovUser refuses what is not a valid lov_user_md with EINVAL', () => {
  const v1 = encodeLovTemplate({ stripeCount: 2 });
  const v3 = encodeLovTemplate({ pool: 'p' });
  const mutate = (b: Buffer, f: (c: Buffer) => void) => {
    const c = Buffer.from(b);
    f(c);
    return c;
  };
  const bad: Array<[string, unknown]> = [
    ['empty', Buffer.alloc(0)],
    ['short v1', v1.subarray(0, 31)],
    ['short v3', v3.subarray(0, 40)],
    ['bad magic', mutate(v1, (c) => c.writeUInt32LE(0x0bd60bd0, 0))],
    ['byte-swapped magic', mutate(v1, (c) => c.writeUInt32BE(LOV_USER_MAGIC_V1, 0))],
    ['released pattern', mutate(v1, (c) => c.writeUInt32LE(0x80000001, 4))],
    ['raid1 pattern', mutate(v1, (c) => c.writeUInt32LE(2, 4))],
    ['stripe size not a multiple of 64 KiB', mutate(v1, (c) => c.writeUInt32LE(100_000, 24))],
    ['stripe count over 2000', mutate(v1, (c) => c.writeUInt16LE(2001, 28))],
    ['pool without NUL', mutate(v3, (c) => c.fill(0x61, 32, 48))],
    ['pool with bad characters', mutate(v3, (c) => c.write('a b', 32, 'latin1'))],
    ['not bytes', 'lov'],
  ];
  for (const [what, b] of bad) {
    assert.throws(() => decodeLovUser(b as Buffer), (e: Error & { errno?: number; name: string }) => e.name === 'StriaError' && e.errno === 22, what);
  }
});
