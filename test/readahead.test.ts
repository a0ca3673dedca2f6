import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileReadahead, ReadaheadBudget, WholeFileTracker, type ReadaheadLimits, type ReadaheadPlan } from '../src/client/cache/readahead.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function limits(l: Partial<ReadaheadLimits> = {}): () => ReadaheadLimits {
  const value = { rpcBytes: MiB, maxPerFileBytes: 8 * MiB, maxWholeBytes: 2 * MiB, ...l };
  return () => value;
}

function assertDisjoint(plans: ReadaheadPlan[]): void {
  const sorted = [...plans].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    assert.ok(prev.start + prev.length <= sorted[i]!.start, `plans overlap: ${JSON.stringify(prev)} and ${JSON.stringify(sorted[i])}`);
  }
}

test('sequential reads grow the window from one RPC, doubling up to the per-file cap', () => {
  const ra = new FileReadahead(limits());
  const size = 256 * MiB;
  const all: ReadaheadPlan[] = [];
  const windows: number[] = [];
  for (let off = 0, i = 0; off < 64 * MiB && i < 1000; off += 128 * KiB, i++) {
    const plans = ra.onRead(off, 128 * KiB, size);
    if (i === 0) assert.deepEqual(plans, [], 'one read is no pattern yet');
    for (const p of plans) {
      assert.equal(p.kind, 'sequential');
      assert.ok(p.start >= off + 128 * KiB, 'plans only what was not asked');
      windows.push(p.length);
    }
    all.push(...plans);
  }
  assert.deepEqual(windows.slice(0, 5), [1, 2, 4, 8, 8].map((m) => m * MiB));
  assert.ok(windows.every((w) => w <= 8 * MiB));
  assertDisjoint(all);
  // the windows join up: from the second read's end onwards everything was planned once
  assert.equal(all[0]!.start, 256 * KiB);
  for (let i = 1; i < all.length; i++) assert.equal(all[i]!.start, all[i - 1]!.start + all[i - 1]!.length);
  assert.equal(ra.stats.misses, 2, 'only the first two reads were not prefetched');
  assert.equal(ra.stats.hits, 64 * 8 - 2);
  assert.equal(ra.stats.sequentialWindows, all.length);
  assert.equal(ra.stats.bytes, all.reduce((n, p) => n + p.length, 0));
});

test('the first window is at least 1 MiB, or the RPC size when larger, within the per-file cap', () => {
  const first = (l: Partial<ReadaheadLimits>) => {
    const ra = new FileReadahead(limits(l));
    ra.onRead(0, 4 * KiB, 2 ** 40);
    return ra.onRead(4 * KiB, 4 * KiB, 2 ** 40)[0]?.length;
  };
  assert.equal(first({ rpcBytes: 256 * KiB }), MiB);
  assert.equal(first({ rpcBytes: 4 * MiB, maxPerFileBytes: 64 * MiB }), 4 * MiB);
  assert.equal(first({ rpcBytes: 4 * MiB, maxPerFileBytes: 2 * MiB }), 2 * MiB);
  assert.equal(first({ maxPerFileBytes: 0 }), undefined, 'a zero per-file limit turns readahead off');
});

test('readahead stops at the end of the file', () => {
  const ra = new FileReadahead(limits({ maxWholeBytes: 0 }));
  const size = 3 * MiB + 100;
  const all: ReadaheadPlan[] = [];
  for (let off = 0, i = 0; off < size && i < 100; off += 128 * KiB, i++) {
    const plans = ra.onRead(off, 128 * KiB, size);
    for (const p of plans) assert.ok(p.start + p.length <= size);
    all.push(...plans);
  }
  assertDisjoint(all);
  const last = all[all.length - 1]!;
  assert.equal(last.start + last.length, size);
  // the file grows: readahead carries on from where it stopped
  const more = ra.onRead(size - 100, 100, 20 * MiB);
  assert.ok(more.length === 1 && more[0]!.start === size);
});

test('reads arriving out of order inside the window do not reset it or plan anything twice', () => {
  const ra = new FileReadahead(limits({ maxWholeBytes: 0 }));
  const chunk = 128 * KiB;
  const order: number[] = [];
  for (let i = 0; i < 200; i += 2) order.push(i + 1, i); // pairs swapped: 1,0,3,2,...
  order.unshift(0);
  const all: ReadaheadPlan[] = [];
  for (const i of order) all.push(...ra.onRead(i * chunk, chunk, 2 ** 40));
  assertDisjoint(all);
  assert.ok(all.every((p) => p.kind === 'sequential'));
  assert.ok(all.length >= 4);
  assert.ok(all[all.length - 1]!.start + all[all.length - 1]!.length >= 200 * chunk, 'readahead kept ahead of the reader');
});

test('random reads plan nothing and reset the sequential window', () => {
  const ra = new FileReadahead(limits({ maxWholeBytes: 0 }));
  const size = 2 ** 40;
  let x = 12345;
  for (let i = 0; i < 200; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    assert.deepEqual(ra.onRead((x % 100000) * 64 * KiB, 4 * KiB, size), []);
  }
  assert.equal(ra.stats.bytes, 0);

  const seq = new FileReadahead(limits({ maxWholeBytes: 0 }));
  for (let i = 0; i < 12; i++) seq.onRead(i * 128 * KiB, 128 * KiB, size);
  assert.deepEqual(seq.onRead(900 * MiB, 128 * KiB, size), [], 'a jump is random');
  const again = seq.onRead(900 * MiB + 128 * KiB, 128 * KiB, size);
  assert.deepEqual(again, [{ start: 900 * MiB + 256 * KiB, length: MiB, kind: 'sequential' }], 'the window starts over at one RPC');

  seq.reset();
  assert.deepEqual(seq.onRead(900 * MiB + 256 * KiB, 128 * KiB, size), [], 'after reset there is no pattern');
});

test('a constant stride seen three times plans the next strides, each once', () => {
  const ra = new FileReadahead(limits({ rpcBytes: MiB, maxPerFileBytes: 64 * MiB, maxWholeBytes: 0 }));
  const len = 64 * KiB;
  const stride = MiB;
  const size = 2 ** 40;
  assert.deepEqual(ra.onRead(0, len, size), []);
  assert.deepEqual(ra.onRead(stride, len, size), []);
  const third = ra.onRead(2 * stride, len, size);
  assert.equal(third.length, MiB / len, 'about one RPC of data');
  third.forEach((p, k) => assert.deepEqual(p, { start: (3 + k) * stride, length: len, kind: 'strided' }));

  const all = [...third];
  for (let i = 3; i < 100; i++) {
    const plans = ra.onRead(i * stride, len, size);
    for (const p of plans) {
      assert.equal(p.kind, 'strided');
      assert.equal(p.start % stride, 0);
      assert.ok(p.start > i * stride);
    }
    all.push(...plans);
  }
  assertDisjoint(all);
  assert.equal(ra.stats.misses, 3, 'every read after the pattern was found had been prefetched');
  assert.ok(ra.stats.stridedWindows >= 2);

  // a wide stride is limited by the per-file span
  const wide = new FileReadahead(limits({ rpcBytes: 4 * MiB, maxPerFileBytes: 8 * MiB, maxWholeBytes: 0 }));
  for (let i = 0; i < 2; i++) wide.onRead(i * 4 * MiB, 4 * KiB, size);
  assert.equal(wide.onRead(8 * MiB, 4 * KiB, size).length, 2);
});

test('two reads at different strides, or of different lengths, are not a stride pattern', () => {
  const ra = new FileReadahead(limits({ maxWholeBytes: 0 }));
  const size = 2 ** 40;
  assert.deepEqual(ra.onRead(0, 64 * KiB, size), []);
  assert.deepEqual(ra.onRead(MiB, 64 * KiB, size), []);
  assert.deepEqual(ra.onRead(3 * MiB, 64 * KiB, size), []);
  assert.deepEqual(ra.onRead(5 * MiB, 32 * KiB, size), []);
  assert.deepEqual(ra.onRead(7 * MiB, 32 * KiB, size), []);
  assert.equal(ra.onRead(9 * MiB, 32 * KiB, size).length > 0, true, 'the third 32 KiB read at 2 MiB stride');
});

test('a small file is read whole on its second read, the rest of it only', () => {
  const ra = new FileReadahead(limits({ maxWholeBytes: 2 * MiB }));
  const size = MiB;
  assert.deepEqual(ra.onRead(0, 4 * KiB, size), []);
  const second = ra.onRead(512 * KiB, 4 * KiB, size);
  assert.deepEqual(second, [
    { start: 0, length: 512 * KiB, kind: 'whole' },
    { start: 516 * KiB, length: size - 516 * KiB, kind: 'whole' },
  ]);
  assert.equal(ra.stats.wholeFile, 1);
  for (let i = 0; i < 20; i++) assert.deepEqual(ra.onRead(i * 48 * KiB, 4 * KiB, size), [], 'nothing left to plan');

  const big = new FileReadahead(limits({ maxWholeBytes: 2 * MiB }));
  big.onRead(0, 4 * KiB, 3 * MiB);
  assert.ok(big.onRead(2 * MiB, 4 * KiB, 3 * MiB).every((p) => p.kind !== 'whole'));
  assert.equal(big.stats.wholeFile, 0);
});

test('the whole-file tracker says yes from the second access, for small files only, with bounded memory', () => {
  let limit = 4 * MiB;
  const t = new WholeFileTracker(() => limit, 2);
  assert.equal(t.onOpen('a', MiB), false);
  assert.equal(t.onRead('a', MiB), true);
  assert.equal(t.onRead('a', MiB), true);
  assert.equal(t.onRead('big', 5 * MiB), false);
  assert.equal(t.onRead('big', 5 * MiB), false);
  assert.equal(t.onRead('empty', 0), false);
  assert.equal(t.onRead('empty', 0), false);
  assert.equal(t.onRead('b', 10), false);
  assert.equal(t.onRead('c', 10), false);
  assert.equal(t.size, 2);
  assert.equal(t.onRead('a', MiB), false, "a was the least recent of three and forgotten");
  limit = 100;
  assert.equal(t.onRead('a', MiB), false, 'the limit is read at each access');
});

test('the readahead budget never lets more than max bytes be in flight', () => {
  let max = 10 * MiB;
  const b = new ReadaheadBudget(() => max);
  assert.equal(b.tryTake(4 * MiB), true);
  assert.equal(b.tryTake(4 * MiB), true);
  assert.equal(b.tryTake(4 * MiB), false);
  assert.equal(b.inFlight, 8 * MiB);
  assert.equal(b.takeUpTo(4 * MiB), 2 * MiB);
  assert.equal(b.takeUpTo(MiB), 0);
  b.give(6 * MiB);
  assert.equal(b.inFlight, 4 * MiB);
  max = 4 * MiB;
  assert.equal(b.tryTake(1), false, 'a lowered limit applies to the next take');
  assert.throws(() => b.give(5 * MiB), { code: 'EINVAL' });
  b.give(4 * MiB);
  assert.equal(b.inFlight, 0);
  assert.equal(b.tryTake(4 * MiB), true);
});
