/**
 * StriaClient.readv (the read path's answer in pieces, for fuse_reply_iov) against real OSTs:
 * - over a striped file with holes and an end inside a stripe, for seeded random ranges
 *   (EOF-crossing and past-EOF ones too), readv's pieces joined are exactly read's bytes
 *   and the file's, cold (readv first) and warm;
 * - dirty bytes of this client show in readv's pieces like in read's;
 * - pieces once returned keep their bytes when the client then writes over their range
 *   (nothing writes a buffer readv handed out).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { TestCluster } from './helpers/cluster.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { mulberry32 } from './helpers/prng.js';
import type { StriaClient } from '../src/client/client.js';
import { clientPair } from './helpers/client-pair.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const root = { uid: 0, gid: 0 };
let cluster: TestCluster;
let a: StriaClient;
let writer: StriaClient;
clientPair(3, (p) => ({ cluster, a, writer } = p));

/**
 * A file the other client writes in separate segments (the gaps are holes) and flushes,
 * so `a` has none of it cached. Returns the bytes it must read as.
 */
async function sparseFile(name: string, size: number, stripeSize: number, seed: number): Promise<Buffer> {
  const expected = Buffer.alloc(size);
  const f = await writer.create(writer.root, name, { mode: 0o644, cred: root, layout: { stripeCount: 3, stripeSize } });
  const rnd = mulberry32(seed);
  // segments of up to 700 KiB with gaps of up to 300 KiB, the last one ending at `size`
  for (let off = 0, i = 0; off < size && i < 1000; i++) {
    const len = Math.min(size - off, 1 + Math.floor(rnd() * 700 * KiB));
    const data = pseudoRandomBuffer(len, seed * 1000 + i);
    await writer.write(f, off, data);
    data.copy(expected, off);
    off += len;
    if (off < size) off = Math.min(size - 1, off + Math.floor(rnd() * 300 * KiB));
  }
  await writer.fsync(f);
  await writer.close(f);
  return expected;
}

function total(pieces: Buffer[]): number {
  return pieces.reduce((n, b) => n + b.length, 0);
}

async function compareRanges(name: string, expected: Buffer, seed: number, rounds: number): Promise<void> {
  const f = await a.open((await a.lookup(a.root, name)).fid);
  const size = expected.length;
  const rnd = mulberry32(seed);
  try {
    for (let i = 0; i < rounds; i++) {
      const kind = i % 4;
      // mostly inside the file; every 4th read crosses or starts past EOF
      const offset = kind === 3 ? size - Math.floor(rnd() * 200 * KiB) + Math.floor(rnd() * 2) * 300 * KiB : Math.floor(rnd() * size);
      const length = 1 + Math.floor(rnd() * (kind === 0 ? 2 * MiB : 200 * KiB));
      const want = expected.subarray(Math.min(offset, size), Math.min(offset + length, size));
      const pieces = await a.readv(f, offset, length); // first: takes the cold path
      const whole = await a.read(f, offset, length);
      const at = `read ${i} [${offset}, +${length})`;
      assert.equal(total(pieces), whole.length, `${at}: readv's pieces add up to read's length`);
      assert.ok(Buffer.concat(pieces).equals(whole), `${at}: readv's bytes are read's`);
      assert.ok(whole.equals(want), `${at}: the file's bytes`);
    }
  } finally {
    await a.close(f);
  }
}

test('readv gives read\'s bytes over 64 KiB stripes with holes and EOF', { timeout: 120_000 }, async () => {
  const expected = await sparseFile('iov-64k', 5 * MiB + 12_345, 64 * KiB, 7);
  await compareRanges('iov-64k', expected, 71, 120);
});

test('readv gives read\'s bytes over 1 MiB stripes with holes and EOF', { timeout: 120_000 }, async () => {
  const expected = await sparseFile('iov-1m', 7 * MiB + 777, MiB, 8);
  await compareRanges('iov-1m', expected, 81, 120);
});

test('readv shows this client\'s dirty bytes and never hands out a buffer that is written later', { timeout: 60_000 }, async () => {
  const size = 3 * MiB + 100;
  const expected = await sparseFile('iov-dirty', size, 64 * KiB, 9);
  const f = await a.open((await a.lookup(a.root, 'iov-dirty')).fid, constants.O_RDWR);
  try {
    const before = await a.readv(f, 0, size); // pages now cached
    const snapshot = Buffer.concat(before);
    assert.ok(snapshot.equals(expected), 'the file\'s bytes before the write');

    const patch = pseudoRandomBuffer(200 * KiB, 99);
    const at = 64 * KiB + 1000; // inside cached pages, across stripes
    await a.write(f, at, patch); // dirty in the write-back cache, over cached pages
    patch.copy(expected, at);

    assert.ok(Buffer.concat(before).equals(snapshot), 'pieces handed out earlier keep their bytes');
    const after = await a.readv(f, 0, size);
    assert.ok(Buffer.concat(after).equals(expected), 'readv shows the dirty bytes');
    assert.ok((await a.read(f, 0, size)).equals(expected), 'read shows the dirty bytes');

    await a.fsync(f);
    assert.ok(Buffer.concat(before).equals(snapshot), 'and still after the flush');
    assert.ok(Buffer.concat(await a.readv(f, 0, size)).equals(expected), 'readv after the flush');
  } finally {
    await a.close(f);
  }
});
