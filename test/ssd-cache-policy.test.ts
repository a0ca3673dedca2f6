import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SegmentedLru } from '../src/client/cache/ssd-policy.js';

/** reads keys through the policy as the cache does: a miss inserts, evicting in policy order */
function read(lru: SegmentedLru<{ size: number }>, cap: number, key: string): boolean {
  if (lru.touch(key)) return true;
  for (const [k] of lru.evictionOrder()) {
    if (lru.bytes + 1 <= cap) break;
    lru.remove(k);
  }
  lru.add(key, { size: 1 });
  return false;
}

test('segmented LRU: a one-off scan does not push out blocks read repeatedly', () => {
  const cap = 1000;
  const lru = new SegmentedLru<{ size: number }>(cap, 0.8);
  for (let pass = 0; pass < 3; pass++) for (let i = 0; i < 500; i++) read(lru, cap, `hot/${i}`);
  for (let i = 0; i < 5000; i++) read(lru, cap, `scan/${i}`);
  let hits = 0;
  for (let i = 0; i < 500; i++) if (read(lru, cap, `hot/${i}`)) hits++;
  assert.equal(hits, 500);
  assert.ok(lru.bytes <= cap);
});

test('protectedShare 0 is plain LRU: the scan flushes the hot set', () => {
  const cap = 1000;
  const lru = new SegmentedLru<{ size: number }>(cap, 0);
  for (let pass = 0; pass < 3; pass++) for (let i = 0; i < 500; i++) read(lru, cap, `hot/${i}`);
  for (let i = 0; i < 5000; i++) read(lru, cap, `scan/${i}`);
  let hits = 0;
  for (let i = 0; i < 500; i++) if (read(lru, cap, `hot/${i}`)) hits++;
  assert.equal(hits, 0);
});

test('the protected segment is capped and overflow returns to probation', () => {
  const lru = new SegmentedLru<{ size: number }>(10, 0.5);
  for (let i = 0; i < 8; i++) lru.add(`k${i}`, { size: 1 });
  for (let i = 0; i < 8; i++) lru.touch(`k${i}`);
  let prot = 0;
  for (let i = 0; i < 8; i++) if (lru.isProtected(`k${i}`)) prot++;
  assert.equal(prot, 5);
  assert.equal(lru.isProtected('k7'), true);
  assert.equal(lru.isProtected('k0'), false);
  assert.equal(lru.bytes, 8);
  const order = [...lru.evictionOrder()].map(([k]) => k);
  assert.deepEqual(order, ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7']);
});
