/**
 * Reads through the kernel, answered with the client's cached pages in one writev
 * (fuse_reply_iov): O_DIRECT reads at seeded random offsets and sizes of a file striped
 * over 3 OSTs in 64 KiB stripes, with holes and an end inside a stripe, read cold (written
 * by the other mount) and again warm, return exactly the file's bytes, short at EOF.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { TestCluster } from './helpers/cluster.js';
import { TestMount } from './helpers/mount.js';
import { mountSkip } from './helpers/two-mounts.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { mulberry32 } from './helpers/prng.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('reads through FUSE answered from pieces', { skip: mountSkip }, () => {
  let cluster: TestCluster;
  let reader: TestMount;
  let writer: TestMount;

  before(async () => {
    cluster = await TestCluster.start({ osts: 3, stripeCount: 3, stripeSize: '64K' });
    reader = await TestMount.start(cluster);
    writer = await TestMount.start(cluster);
  }, { timeout: 120_000 });

  after(async () => {
    await writer?.stop();
    await reader?.stop();
    await cluster?.stop();
  }, { timeout: 120_000 });

  test('O_DIRECT reads at random ranges return the file\'s bytes, cold and warm', { timeout: 120_000 }, async () => {
    const size = 3 * MiB + 4321;
    const expected = Buffer.alloc(size);
    const w = await open(writer.path('sparse'), 'w');
    try {
      // data, a 200 KiB hole, data to the end
      const head = pseudoRandomBuffer(MiB + 777, 1);
      const tailAt = head.length + 200 * KiB;
      const tail = pseudoRandomBuffer(size - tailAt, 2);
      await w.write(head, 0, head.length, 0);
      await w.write(tail, 0, tail.length, tailAt);
      await w.sync();
      head.copy(expected, 0);
      tail.copy(expected, tailAt);
    } finally {
      await w.close();
    }

    const r = await open(reader.path('sparse'), constants.O_RDONLY | constants.O_DIRECT);
    try {
      for (const pass of ['cold', 'warm']) {
        const rnd = mulberry32(pass === 'cold' ? 11 : 12);
        for (let i = 0; i < 60; i++) {
          const offset = i % 5 === 4 ? size - Math.floor(rnd() * 300 * KiB) : Math.floor(rnd() * size);
          const length = 1 + Math.floor(rnd() * (i % 3 === 0 ? 2 * MiB : 150 * KiB));
          const buf = Buffer.alloc(length);
          const { bytesRead } = await r.read(buf, 0, length, offset);
          const want = expected.subarray(Math.min(offset, size), Math.min(offset + length, size));
          assert.equal(bytesRead, want.length, `${pass} read ${i} [${offset}, +${length}): length`);
          assert.ok(buf.subarray(0, bytesRead).equals(want), `${pass} read ${i} [${offset}, +${length}): bytes`);
        }
      }
    } finally {
      await r.close();
    }
  });
});
