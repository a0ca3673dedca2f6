/**
 * BulkPool: buffers given back are reused for the next take of their size class; only what it
 * lent is taken back, once; small and huge sizes are plain allocations; idle memory is bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BulkPool, PLAIN_BULKS } from '../src/lnet/bulk-pool.js';

const KiB = 1024;
const MiB = 1024 * KiB;

test('a buffer given back is reused by the next take of its size class', () => {
  const pool = new BulkPool();
  const a = pool.take(MiB);
  assert.equal(a.length, MiB);
  assert.ok(pool.owns(a));
  pool.give(a);
  assert.ok(!pool.owns(a));
  const b = pool.take(MiB - 100);
  assert.equal(b.length, MiB - 100);
  assert.equal(b.buffer, a.buffer, 'same memory, no new allocation');
  assert.equal(pool.stats.reused, 1);
  const c = pool.take(MiB);
  assert.notEqual(c.buffer, b.buffer, 'a buffer still lent out is never handed out twice');
});

test('only what the pool lent is taken back, and only once', () => {
  const pool = new BulkPool();
  const foreign = Buffer.allocUnsafe(MiB);
  pool.give(foreign);
  assert.equal(pool.idleSize, 0);
  const a = pool.take(256 * KiB);
  pool.give(a);
  pool.give(a);
  assert.equal(pool.idleSize, 256 * KiB);
  assert.equal(pool.stats.given, 1);
  const x = pool.take(256 * KiB);
  const y = pool.take(256 * KiB);
  assert.notEqual(x.buffer, y.buffer);
});

test('sizes outside the pooled range are plain allocations', () => {
  const pool = new BulkPool({ minBytes: 128 * KiB, maxBytes: 4 * MiB });
  for (const n of [0, 4 * KiB, 128 * KiB - 1, 4 * MiB + 1]) {
    const b = pool.take(n);
    assert.equal(b.length, n);
    assert.ok(!pool.owns(b));
  }
  assert.equal(PLAIN_BULKS.take(10).length, 10);
});

test('idle buffers are bounded', () => {
  const pool = new BulkPool({ maxIdleBytes: 2 * MiB });
  const lent = Array.from({ length: 5 }, () => pool.take(MiB));
  for (const b of lent) pool.give(b);
  assert.equal(pool.idleSize, 2 * MiB);
  assert.equal(pool.stats.given, 5);
});
