/**
 * ObjectVersions: a modified object never reports a version it reported before, also
 * after its entry was evicted from the bounded table; unmodified objects keep theirs
 * while no eviction happens; another epoch shares no version with this one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StriaError } from '../src/common/errno.js';
import { ObjectVersions } from '../src/oss/object-version.js';

test('a bump changes only the bumped object, and reads do not change versions', () => {
  const v = new ObjectVersions('e1', 100);
  const a0 = v.of(1, 1);
  const b0 = v.of(1, 2);
  assert.equal(a0, 'e1.0');
  assert.equal(v.of(1, 1), a0, 'reading again gives the same version');
  const a1 = v.bump(1, 1);
  assert.notEqual(a1, a0);
  assert.equal(v.of(1, 1), a1);
  assert.equal(v.of(1, 2), b0, 'another object is untouched');
  assert.equal(v.of(2, 1), b0, 'same oid in another sequence is another object');
});

test('with a tiny table, no modified object ever reports a version it reported before', () => {
  const v = new ObjectVersions('tiny', 3);
  const objects = 8;
  const seen = Array.from({ length: objects }, () => new Set<string>());
  const look = (oid: number) => {
    const ver = v.of(7, oid);
    seen[oid]!.add(ver);
    return ver;
  };
  // Deterministic mixed workload: bumps of a few objects evict others repeatedly.
  let x = 12345;
  for (let i = 0; i < 2000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const oid = x % objects;
    for (let o = 0; o < objects; o++) look(o);
    if (x % 3 !== 0) {
      const before = seen[oid]!;
      const after = v.bump(7, oid);
      assert.ok(!before.has(after), `object ${oid} modified at step ${i} got ${after}, a version it had reported before`);
      assert.equal(v.of(7, oid), after, 'reported right after the bump');
      // Any version read until the next bump of this object belongs to the new data only.
      seen[oid] = new Set([after]);
    }
    assert.ok(v.size <= 3, 'the table stays bounded');
  }
});

test('a destroyed and recreated object gets a version it never had', () => {
  const v = new ObjectVersions('d', 2);
  const old = v.bump(1, 5);
  v.forget(1, 5);
  const recreated = v.bump(1, 5);
  assert.notEqual(recreated, old);
  assert.notEqual(recreated, v.of(1, 99));
});

test('two epochs never share a version string; epochs are random by default', () => {
  const a = new ObjectVersions();
  const b = new ObjectVersions();
  assert.notEqual(a.epoch, b.epoch);
  assert.match(a.epoch, /^[0-9a-f]{8}$/);
  assert.notEqual(a.of(1, 1), b.of(1, 1));
  assert.notEqual(a.bump(1, 1), b.bump(1, 1));
});

test('bad epochs and sizes are refused', () => {
  assert.throws(() => new ObjectVersions('a.b'), StriaError);
  assert.throws(() => new ObjectVersions('ok', 0), StriaError);
});
