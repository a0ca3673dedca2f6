/** Extent overlap, conflicts and the grant-time growth policy ldlm_extent_policy (reference §3.4). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  assertExtent,
  EXTENT_EOF,
  type ExtentLockDesc,
  extentLocksConflict,
  extentsOverlap,
  type ExtentWaiterDesc,
  growExtent,
  LDLM_MAX_GROWN_EXTENT,
} from '../src/ldlm/extent.js';
import { LockMode } from '../src/ldlm/modes.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const { PW, PR, CW, NL, GROUP } = LockMode;
const page = (start: number) => ({ start, end: start + 4 * KiB - 1 });

describe('extent overlap and conflicts', () => {
  test('ranges are inclusive on both ends', () => {
    assert.equal(extentsOverlap({ start: 0, end: 4095 }, { start: 4095, end: 8191 }), true);
    assert.equal(extentsOverlap({ start: 0, end: 4095 }, { start: 4096, end: 8191 }), false);
    assert.equal(extentsOverlap({ start: 10, end: EXTENT_EOF }, { start: 0, end: 10 }), true);
  });

  test('conflict needs incompatible modes and intersecting ranges', () => {
    assert.equal(extentLocksConflict({ mode: PW, extent: page(0) }, { mode: PR, extent: page(0) }), true);
    assert.equal(extentLocksConflict({ mode: PW, extent: page(0) }, { mode: PR, extent: page(4096) }), false);
    assert.equal(extentLocksConflict({ mode: PR, extent: page(0) }, { mode: PR, extent: page(0) }), false);
  });

  test('GROUP covers the whole object; same gid shares, other gids and other modes conflict', () => {
    assert.equal(extentLocksConflict({ mode: GROUP, gid: 1, extent: page(0) }, { mode: PR, extent: page(1 * GiB) }), true);
    assert.equal(extentLocksConflict({ mode: GROUP, gid: 1, extent: page(0) }, { mode: GROUP, gid: 1, extent: page(0) }), false);
    assert.equal(extentLocksConflict({ mode: GROUP, gid: 1, extent: page(0) }, { mode: GROUP, gid: 2, extent: page(1 * GiB) }), true);
    assert.equal(extentLocksConflict({ mode: GROUP, gid: 1, extent: page(0) }, { mode: NL, extent: page(0) }), false);
  });

  test('extents are validated', () => {
    assertExtent({ start: 0, end: EXTENT_EOF });
    for (const bad of [{ start: 5, end: 4 }, { start: -1, end: 4 }, { start: 0.5, end: 4 }, { start: 0, end: EXTENT_EOF + 1 }]) {
      assert.throws(() => assertExtent(bad), { code: 'LDLM_BAD_EXTENT' }, JSON.stringify(bad));
    }
  });
});

describe('ldlm_extent_policy growth', () => {
  const req = (mode: LockMode, extent: { start: number; end: number }, owner = 'c1') => ({ mode, extent, owner });
  const other = (mode: LockMode, extent: { start: number; end: number }, owner = 'c2'): ExtentWaiterDesc => ({ mode, extent, owner });

  test('a lone lock grows to [0, EOF]', () => {
    assert.deepEqual(growExtent(req(PW, page(5 * MiB)), [], []), { start: 0, end: EXTENT_EOF });
    assert.deepEqual(growExtent(req(PR, { start: 123, end: 456 }), [], []), { start: 0, end: EXTENT_EOF });
  });

  test('no growth for local locks and lockahead (NO_EXPANSION) locks', () => {
    assert.deepEqual(growExtent({ ...req(PW, page(5 * MiB)), local: true }, [], []), page(5 * MiB));
    assert.deepEqual(growExtent({ ...req(PW, page(5 * MiB)), noExpansion: true }, [], []), page(5 * MiB));
  });

  test('compatible granted locks do not limit growth', () => {
    const granted: ExtentLockDesc[] = [{ mode: PR, extent: page(1 * MiB) }, { mode: NL, extent: page(8 * MiB) }];
    assert.deepEqual(growExtent(req(PR, page(4 * MiB)), granted, []), { start: 0, end: EXTENT_EOF });
  });

  test('an incompatible granted lock stops downward growth and caps the end below it', () => {
    const granted: ExtentLockDesc[] = [{ mode: PR, extent: { start: 1 * MiB, end: 2 * MiB - 1 } }, { mode: PR, extent: { start: 16 * MiB, end: 17 * MiB - 1 } }];
    assert.deepEqual(growExtent(req(PW, page(0)), granted, []), { start: 0, end: 1 * MiB - 1 });
    assert.deepEqual(growExtent(req(PW, page(4 * MiB)), granted, []), { start: 4 * MiB, end: 16 * MiB - 1 });
    assert.deepEqual(growExtent(req(PW, page(32 * MiB)), granted, []), { start: 32 * MiB, end: EXTENT_EOF });
  });

  test('conflicting waiters clamp growth on both sides', () => {
    const waiting = [other(PW, { start: 0, end: 1 * MiB - 1 }), other(PW, { start: 8 * MiB, end: 9 * MiB - 1 })];
    assert.deepEqual(growExtent(req(PW, page(4 * MiB)), [], waiting), { start: 1 * MiB, end: 8 * MiB - 1 });
  });

  test("compatible waiters of other clients are ignored, the client's own are not", () => {
    assert.deepEqual(growExtent(req(PR, page(0)), [], [other(PR, page(8 * MiB), 'c2')]), { start: 0, end: EXTENT_EOF });
    assert.deepEqual(growExtent(req(PR, page(0)), [], [other(PR, page(8 * MiB), 'c1')]), { start: 0, end: 8 * MiB - 1 });
  });

  test('a waiter whose request overlaps ours does not limit growth (ping-pong anyway)', () => {
    const waiting = [other(PW, { start: 4096, end: 1 * MiB - 1 })];
    assert.deepEqual(growExtent(req(PW, { start: 0, end: 8191 }), [], waiting), { start: 0, end: EXTENT_EOF });
  });

  test('more than 4 conflicting waiters stop downward growth', () => {
    const far = (n: number) => Array.from({ length: n }, (_, i) => other(PW, page(64 * MiB + i * 4 * KiB)));
    assert.deepEqual(growExtent(req(PW, page(4 * MiB)), [], far(4)), { start: 0, end: 64 * MiB - 1 });
    assert.deepEqual(growExtent(req(PW, page(4 * MiB)), [], far(5)), { start: 4 * MiB, end: 64 * MiB - 1 });
  });

  test('more than 32 conflicting granted locks cap PW/CW growth at req_start + 32 MiB - 1', () => {
    const readers = (n: number): ExtentLockDesc[] => Array.from({ length: n }, (_, i) => ({ mode: PR, extent: page(i * 4 * KiB) }));
    const start = 1 * GiB;
    assert.equal(LDLM_MAX_GROWN_EXTENT, 32 * MiB - 1);
    assert.deepEqual(growExtent(req(PW, page(start)), readers(32), []), { start, end: EXTENT_EOF });
    assert.deepEqual(growExtent(req(PW, page(start)), readers(33), []), { start, end: start + 32 * MiB - 1 });
    assert.deepEqual(growExtent(req(CW, page(start)), readers(33), []), { start, end: start + 32 * MiB - 1 });
    // PR is not capped, however contended.
    const writers: ExtentLockDesc[] = readers(33).map((l) => ({ ...l, mode: PW }));
    assert.deepEqual(growExtent(req(PR, page(start)), writers, []), { start, end: EXTENT_EOF });
  });

  test('more than 32 conflicting waiters cap PW growth too', () => {
    const waiting = Array.from({ length: 33 }, (_, i) => other(PW, page(i * 4 * KiB)));
    const start = 1 * GiB;
    assert.deepEqual(growExtent(req(PW, page(start)), [], waiting), { start, end: start + 32 * MiB - 1 });
  });

  test("the grant is aligned to the request's own alignment, shrinking toward it", () => {
    // A 1 MiB-aligned request keeps 1 MiB alignment: the limit 5 MiB + 4095 shrinks to 5 MiB - 1.
    const granted: ExtentLockDesc[] = [{ mode: PR, extent: { start: 5 * MiB + 4096, end: 6 * MiB } }];
    assert.deepEqual(growExtent(req(PW, { start: 1 * MiB, end: 2 * MiB - 1 }), granted, []), { start: 1 * MiB, end: 5 * MiB - 1 });
    // A page request is page-aligned: a limit at byte 9999 shrinks to the page end 8191.
    assert.deepEqual(growExtent(req(PW, page(0)), [{ mode: PR, extent: { start: 10000, end: 20000 } }], []), { start: 0, end: 8191 });
    // Alignment never cuts into the request itself.
    assert.deepEqual(growExtent(req(PW, { start: 0, end: 9000 }), [{ mode: PR, extent: { start: 9500, end: 20000 } }], []), { start: 0, end: 9000 });
  });

  test('the grant always contains the request and never covers an incompatible granted lock', () => {
    // Deterministic pseudo-random scenarios, bounded in count.
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      const granted: ExtentLockDesc[] = [];
      for (let i = 0; i < rnd(6); i++) granted.push({ mode: [PR, PW, CW][rnd(3)]!, extent: page(rnd(256) * 4 * KiB) });
      const waiting = Array.from({ length: rnd(6) }, () => other([PR, PW][rnd(2)]!, page(rnd(256) * 4 * KiB), rnd(2) ? 'c1' : 'c2'));
      const r = req([PR, PW][rnd(2)]!, page(rnd(256) * 4 * KiB));
      if (granted.some((g) => extentLocksConflict(g, r))) continue;
      const got = growExtent(r, granted, waiting);
      assert.ok(got.start <= r.extent.start && got.end >= r.extent.end, 'contains the request');
      for (const g of granted) assert.equal(extentLocksConflict(g, { mode: r.mode, extent: got }), false, 'no conflict with granted');
    }
  });
});
