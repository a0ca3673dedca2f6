import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  fileOffset, fileSizeFromObject, mapExtent, objectOffset, objectSizeForFileSize, stripeIndex,
} from '../src/common/layout.js';

const MiB = 1024 * 1024;

test('reference §2.1 worked example: S=1MiB N=4 x=5.5MiB -> stripe 1, object offset 1.5MiB', () => {
  const x = 5.5 * MiB;
  assert.equal(stripeIndex(x, MiB, 4), 1);
  assert.equal(objectOffset(x, MiB, 4), 1.5 * MiB);
  assert.equal(fileOffset(1.5 * MiB, 1, MiB, 4), x);
});

test('file size seen through one object (lov_stripe_size)', () => {
  const S = MiB;
  const N = 4;
  assert.equal(fileSizeFromObject(0, 2, S, N), 0);
  // r != 0: q*W + i*S + r
  assert.equal(fileSizeFromObject(100, 0, S, N), 100);
  assert.equal(fileSizeFromObject(100, 3, S, N), 3 * S + 100);
  assert.equal(fileSizeFromObject(S + 5, 1, S, N), 4 * S + S + 5);
  // r == 0: (q-1)*W + (i+1)*S
  assert.equal(fileSizeFromObject(S, 0, S, N), S);
  assert.equal(fileSizeFromObject(2 * S, 2, S, N), 4 * S + 3 * S);
});

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('object offset -> file offset round trip at random offsets', () => {
  const r = rng(42);
  for (let k = 0; k < 20000; k++) {
    const S = (1 + Math.floor(r() * 64)) * 65536;
    const N = 1 + Math.floor(r() * 16);
    const x = Math.floor(r() * 2 ** 40);
    const i = stripeIndex(x, S, N);
    const o = objectOffset(x, S, N);
    assert.ok(i >= 0 && i < N);
    assert.equal(fileOffset(o, i, S, N), x, `S=${S} N=${N} x=${x}`);
  }
});

test('file size from objects equals the size that produced them', () => {
  const r = rng(7);
  for (let k = 0; k < 5000; k++) {
    const S = (1 + Math.floor(r() * 16)) * 65536;
    const N = 1 + Math.floor(r() * 8);
    const size = Math.floor(r() * 64 * S * N);
    let max = 0;
    for (let i = 0; i < N; i++) max = Math.max(max, fileSizeFromObject(objectSizeForFileSize(size, i, S, N), i, S, N));
    assert.equal(max, size, `S=${S} N=${N} size=${size}`);
  }
});

test('mapExtent covers a range exactly once with object-contiguous extents', () => {
  const r = rng(99);
  for (let k = 0; k < 2000; k++) {
    const S = (1 + Math.floor(r() * 8)) * 65536;
    const N = 1 + Math.floor(r() * 6);
    const off = Math.floor(r() * 10 * S * N);
    const len = 1 + Math.floor(r() * 5 * S * N);
    const exts = mapExtent(off, len, S, N);
    let covered = 0;
    const seen: Array<[number, number]> = [];
    for (const e of exts) {
      let expect = e.objStart;
      for (const p of e.pieces) {
        assert.equal(p.objectOffset, expect, 'pieces of one object are contiguous in object space');
        assert.equal(stripeIndex(p.fileOffset, S, N), e.stripe);
        assert.equal(objectOffset(p.fileOffset, S, N), p.objectOffset);
        expect += p.length;
        covered += p.length;
        seen.push([p.fileOffset, p.fileOffset + p.length]);
      }
      assert.equal(expect, e.objEnd);
    }
    assert.equal(covered, len);
    seen.sort((a, b) => a[0] - b[0]);
    for (let j = 1; j < seen.length; j++) assert.equal(seen[j]![0], seen[j - 1]![1], 'no gap or overlap');
    assert.equal(seen[0]![0], off);
  }
});
