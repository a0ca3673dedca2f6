import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from './helpers/prng.js';
import { PageCache, PAGE_OVERHEAD_BYTES, DEFAULT_PAGE_SIZE } from '../src/client/cache/page-cache.js';

/** deterministic PRNG so a failure replays */
const rng = mulberry32;

function filled(len: number, byte: number): Buffer {
  return Buffer.alloc(len, byte);
}

test('the default page size is a power of two between 16 KiB and 1 MiB', () => {
  assert.ok(DEFAULT_PAGE_SIZE >= 16 * 1024 && DEFAULT_PAGE_SIZE <= 1024 * 1024);
  assert.equal(DEFAULT_PAGE_SIZE & (DEFAULT_PAGE_SIZE - 1), 0);
});

test('cached bytes never exceed maxBytes, whatever is put', () => {
  const ps = 1024;
  const cache = new PageCache({ maxBytes: 10 * ps + 300, pageSize: ps });
  const r = rng(1);
  for (let i = 0; i < 5000; i++) {
    const obj = Math.floor(r() * 5);
    const page = Math.floor(r() * 40);
    const eof = r() < 0.3;
    const len = eof ? Math.floor(r() * (ps + 1)) : ps;
    cache.put(obj % 2, 7, obj, page, filled(len, i & 0xff), eof);
    assert.ok(cache.bytes <= cache.maxBytes, `bytes ${cache.bytes} > max ${cache.maxBytes} after put ${i}`);
  }
  let sum = 0;
  for (let obj = 0; obj < 5; obj++) sum += cache.cachedBytesOf(obj % 2, 7, obj);
  assert.equal(sum, cache.dataBytes);
  assert.equal(cache.bytes, cache.dataBytes + cache.pages * PAGE_OVERHEAD_BYTES);
});

test('the least recently used page goes first; get refreshes recency, peek does not', () => {
  const ps = 100;
  const max = 3 * (ps + PAGE_OVERHEAD_BYTES);
  const cache = new PageCache({ maxBytes: max, pageSize: ps });
  for (const p of [0, 1, 2]) cache.put(0, 0, 1, p, filled(ps, p), false);
  assert.ok(cache.get(0, 0, 1, 0));
  cache.put(0, 0, 1, 3, filled(ps, 3), false);
  assert.equal(cache.peek(0, 0, 1, 1), undefined, 'page 1 was the least recent');
  assert.ok(cache.peek(0, 0, 1, 0), 'page 0 was refreshed by get');

  // order now (oldest first): 2, 0, 3; peek must not save page 2
  assert.ok(cache.peek(0, 0, 1, 2));
  cache.put(0, 0, 1, 4, filled(ps, 4), false);
  assert.equal(cache.peek(0, 0, 1, 2), undefined, 'peek does not refresh');
  assert.deepEqual([0, 3, 4].map((p) => cache.peek(0, 0, 1, p)?.data[0]), [0, 3, 4]);
  assert.equal(cache.pages, 3);
  assert.equal(cache.cachedBytesOf(0, 0, 1), 3 * ps);
});

test('lowering maxBytes trims at once, keeping the most recent pages', () => {
  const ps = 100;
  const per = ps + PAGE_OVERHEAD_BYTES;
  const cache = new PageCache({ maxBytes: 10 * per, pageSize: ps });
  for (let p = 0; p < 10; p++) cache.put(1, 0, 9, p, filled(ps, p), false);
  cache.get(1, 0, 9, 0);
  cache.maxBytes = 3 * per;
  assert.equal(cache.maxBytes, 3 * per);
  assert.ok(cache.bytes <= 3 * per);
  assert.equal(cache.pages, 3);
  assert.deepEqual([0, 8, 9].map((p) => cache.peek(1, 0, 9, p) !== undefined), [true, true, true]);
  assert.equal(cache.cachedBytesOf(1, 0, 9), 3 * ps);
  assert.equal(cache.dataBytes, 3 * ps);
  cache.maxBytes = 20 * per;
  for (let p = 10; p < 20; p++) cache.put(1, 0, 9, p, filled(ps, p), false);
  assert.equal(cache.pages, 13);
  cache.maxBytes = 0;
  assert.equal(cache.pages, 0);
  assert.equal(cache.bytes, 0);
  cache.put(1, 0, 9, 0, filled(ps, 1), false);
  assert.equal(cache.pages, 0, 'a zero-sized cache caches nothing');
  assert.equal(cache.cachedBytesOf(1, 0, 9), 0);
});

test('putting a page again replaces it and keeps the accounting', () => {
  const cache = new PageCache({ maxBytes: 1 << 20, pageSize: 64 });
  cache.put(0, 1, 2, 5, filled(64, 1), false);
  cache.put(0, 1, 2, 5, filled(10, 2), true);
  assert.equal(cache.pages, 1);
  assert.deepEqual(cache.get(0, 1, 2, 5), { data: filled(10, 2), eof: true });
  assert.equal(cache.cachedBytesOf(0, 1, 2), 10);
  assert.equal(cache.bytes, 10 + PAGE_OVERHEAD_BYTES);
  assert.equal(cache.invalidate(0, 1, 2), 1);
  assert.equal(cache.bytes, 0);
  assert.equal(cache.cachedBytesOf(0, 1, 2), 0);
});

test('put refuses data that is not a page', () => {
  const cache = new PageCache({ maxBytes: 1 << 20, pageSize: 64 });
  assert.throws(() => cache.put(0, 0, 1, 0, filled(65, 0), true), { code: 'EINVAL' });
  assert.throws(() => cache.put(0, 0, 1, 0, filled(63, 0), false), { code: 'EINVAL' });
  assert.throws(() => cache.put(0, 0, 1, -1, filled(64, 0), false), { code: 'EINVAL' });
  assert.equal(cache.pages, 0);
});

test('invalidate drops exactly the pages of that object overlapping the extent', () => {
  const ps = 16;
  const cache = new PageCache({ maxBytes: 1 << 20, pageSize: ps });
  const objects: Array<[number, number, number]> = [[0, 5, 1], [1, 5, 1], [0, 5, 2], [0, 6, 1]];
  for (const [ost, seq, oid] of objects) for (let p = 0; p < 10; p++) cache.put(ost, seq, oid, p, filled(ps, p), false);
  const present = (ost: number, seq: number, oid: number) =>
    Array.from({ length: 10 }, (_, p) => p).filter((p) => cache.peek(ost, seq, oid, p) !== undefined);

  // [2*ps+1, 4*ps] touches the first byte of page 4: pages 2, 3, 4
  assert.equal(cache.invalidate(0, 5, 1, 2 * ps + 1, 4 * ps), 3);
  assert.deepEqual(present(0, 5, 1), [0, 1, 5, 6, 7, 8, 9]);
  for (const [ost, seq, oid] of objects.slice(1)) assert.deepEqual(present(ost, seq, oid), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  // an extent ending on the last byte of a page leaves the next page alone
  assert.equal(cache.invalidate(0, 5, 1, 0, 2 * ps - 1), 2);
  assert.deepEqual(present(0, 5, 1), [5, 6, 7, 8, 9]);

  assert.equal(cache.invalidate(1, 5, 1, 8 * ps, Number.MAX_SAFE_INTEGER), 2);
  assert.deepEqual(present(1, 5, 1), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(cache.invalidate(0, 5, 2, 7 * ps, 2 ** 64), 3);
  assert.deepEqual(present(0, 5, 2), [0, 1, 2, 3, 4, 5, 6]);
  assert.equal(cache.invalidate(0, 6, 1, 0, Infinity), 10);
  assert.deepEqual(present(0, 6, 1), []);
  assert.equal(cache.invalidate(0, 6, 1), 0);
  assert.equal(cache.invalidate(9, 9, 9), 0);
  assert.equal(cache.cachedBytesOf(0, 5, 1), 5 * ps);
  assert.equal(cache.dataBytes, (5 + 8 + 7) * ps);
});

test('truncate drops the pages above the size and cuts the page holding it', () => {
  const ps = 16;
  const cache = new PageCache({ maxBytes: 1 << 20, pageSize: ps });
  for (let p = 0; p < 4; p++) cache.put(0, 0, 3, p, filled(ps, p + 1), p === 3);
  cache.truncate(0, 0, 3, 2 * ps + 8);
  assert.equal(cache.peek(0, 0, 3, 3), undefined);
  assert.deepEqual(cache.peek(0, 0, 3, 2), { data: filled(8, 3), eof: true });
  assert.deepEqual(cache.peek(0, 0, 3, 1), { data: filled(ps, 2), eof: false });
  assert.equal(cache.cachedBytesOf(0, 0, 3), 2 * ps + 8);

  // growing again: the old end page is zero-filled up to the new size
  cache.truncate(0, 0, 3, 2 * ps + 12);
  assert.deepEqual(cache.peek(0, 0, 3, 2), { data: Buffer.concat([filled(8, 3), filled(4, 0)]), eof: true });
  cache.truncate(0, 0, 3, 10 * ps);
  assert.deepEqual(cache.peek(0, 0, 3, 2), { data: Buffer.concat([filled(8, 3), filled(8, 0)]), eof: false });

  cache.truncate(0, 0, 3, ps);
  assert.deepEqual(cache.peek(0, 0, 3, 0), { data: filled(ps, 1), eof: true }, 'the object ends with page 0');
  assert.equal(cache.pages, 1);
  cache.truncate(0, 0, 3, 0);
  assert.equal(cache.pages, 0);
  assert.equal(cache.bytes, 0);
});

test('applyWrite keeps every cached page equal to the object (randomised against a buffer model)', () => {
  const ps = 16;
  const maxPages = 12;
  const oids = [1, 2];
  for (const seed of [1, 2, 3, 4, 5]) {
    const r = rng(seed);
    // room for about 9 pages, so eviction runs alongside the writes
    const cache = new PageCache({ maxBytes: 9 * (ps + PAGE_OVERHEAD_BYTES), pageSize: ps });
    const model = new Map<number, Buffer>(oids.map((o) => [o, Buffer.alloc(0)]));
    const write = (oid: number, off: number, data: Buffer) => {
      const cur = model.get(oid)!;
      const next = Buffer.alloc(Math.max(cur.length, off + data.length));
      cur.copy(next);
      data.copy(next, off);
      model.set(oid, next);
      cache.applyWrite(0, 0, oid, off, data);
    };
    for (let step = 0; step < 3000; step++) {
      const oid = oids[Math.floor(r() * oids.length)]!;
      const obj = model.get(oid)!;
      const op = r();
      if (op < 0.4) {
        // a page read from the OST under a lock
        const lastPage = Math.floor(obj.length / ps);
        const page = Math.floor(r() * (lastPage + 1));
        const start = page * ps;
        const data = Buffer.from(obj.subarray(start, Math.min(start + ps, obj.length)));
        cache.put(0, 0, oid, page, data, obj.length <= start + ps);
      } else if (op < 0.85) {
        const off = Math.floor(r() * maxPages * ps);
        const len = 1 + Math.floor(r() * 2.5 * ps);
        write(oid, off, Buffer.from(Array.from({ length: len }, () => Math.floor(r() * 256))));
      } else if (op < 0.95) {
        const size = Math.floor(r() * maxPages * ps);
        const next = Buffer.alloc(size);
        obj.copy(next, 0, 0, Math.min(size, obj.length));
        model.set(oid, next);
        cache.truncate(0, 0, oid, size);
      } else {
        const start = Math.floor(r() * maxPages * ps);
        cache.invalidate(0, 0, oid, start, start + Math.floor(r() * 3 * ps));
      }

      assert.ok(cache.bytes <= cache.maxBytes);
      let total = 0;
      for (const o of oids) {
        const truth = model.get(o)!;
        let bytes = 0;
        for (let page = 0; page <= maxPages + 3; page++) {
          const cached = cache.peek(0, 0, o, page);
          if (!cached) continue;
          const start = page * ps;
          bytes += cached.data.length;
          assert.deepEqual(cached.data, truth.subarray(start, start + cached.data.length), `seed ${seed} step ${step} oid ${o} page ${page}`);
          if (cached.eof) assert.equal(start + cached.data.length, truth.length, `seed ${seed} step ${step}: eof page ${page} must end the object`);
          else {
            assert.equal(cached.data.length, ps);
            assert.ok(truth.length >= start + ps, `seed ${seed} step ${step}: full page ${page} beyond the object`);
          }
        }
        assert.equal(cache.cachedBytesOf(0, 0, o), bytes);
        total += bytes;
      }
      assert.equal(cache.dataBytes, total);
    }
  }
});

test('applyWrite extends an eof page only when the write starts at or before its end', () => {
  const ps = 16;
  const cache = new PageCache({ maxBytes: 1 << 20, pageSize: ps });
  cache.put(0, 0, 1, 0, filled(ps, 1), false);
  cache.put(0, 0, 1, 1, filled(4, 2), true);
  cache.applyWrite(0, 0, 1, ps + 4, filled(3, 9));
  assert.deepEqual(cache.peek(0, 0, 1, 1), { data: Buffer.from([2, 2, 2, 2, 9, 9, 9]), eof: true });
  cache.applyWrite(0, 0, 1, ps + 10, filled(1, 7));
  assert.equal(cache.peek(0, 0, 1, 1), undefined, 'a write past the end leaves a hole the page does not know');
  assert.ok(cache.peek(0, 0, 1, 0));
  // a write that crosses pages: the full page is overwritten in its tail
  cache.applyWrite(0, 0, 1, ps - 2, filled(4, 5));
  assert.deepEqual(cache.peek(0, 0, 1, 0)?.data, Buffer.concat([filled(ps - 2, 1), filled(2, 5)]));
  // pages not cached stay uncached
  assert.equal(cache.pages, 1);
});

test('clear empties the cache and its index', () => {
  const cache = new PageCache({ maxBytes: 1 << 20, pageSize: 16 });
  for (let p = 0; p < 5; p++) cache.put(2, 0, 4, p, filled(16, p), false);
  cache.clear();
  assert.equal(cache.pages, 0);
  assert.equal(cache.bytes, 0);
  assert.equal(cache.dataBytes, 0);
  assert.equal(cache.cachedBytesOf(2, 0, 4), 0);
  cache.put(2, 0, 4, 0, filled(16, 1), false);
  assert.equal(cache.cachedBytesOf(2, 0, 4), 16);
});
