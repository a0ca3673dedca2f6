/**
 * File data is coherent across two mounts of one filesystem (two client
 * processes): what mount A writes, mount B reads at once, with no pause in
 * between, whether B opens the file afresh or holds it open.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, open, readFile, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { shOk } from './helpers/shell.js';
import { mountSkip, twoMounts } from './helpers/two-mounts.js';

const TEST_TIMEOUT = 120_000;

/** Deterministic bytes: each iteration's contents differ from every other's. */
function pattern(size: number, salt: number): Buffer {
  const out = Buffer.alloc(size);
  let block = Buffer.alloc(0);
  for (let off = 0, n = 0; off < size; off += block.length, n++) {
    block = createHash('sha256').update(`${salt}:${n}`).digest();
    block.copy(out, off);
  }
  return out;
}

/** A readable account of how two buffers differ. */
function diff(expected: Buffer, got: Buffer): string {
  if (expected.length !== got.length) return `size ${got.length}, expected ${expected.length}`;
  for (let i = 0; i < expected.length; i++) if (expected[i] !== got[i]) return `first different byte at offset ${i} (of ${expected.length})`;
  return 'identical';
}

describe('two mounts: file data', { skip: mountSkip }, () => {
  const mounts = twoMounts({ osts: 3 });

  test('what A writes, B reads at once: 20 rewrites that grow and shrink the file', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    // Growing, shrinking, and same-size rewrites (where only the bytes change), across 1 MiB boundaries.
    const sizes = [5, 4096, 100_000, 1_500_000, 3, 0, 65_536, 70_001, 2_000_000, 4095, 12, 300_000, 300_000, 1, 1_048_576, 1_048_577, 64, 200_000, 8191, 50];
    await writeFile(a.path('rewritten'), 'seed');
    assert.equal((await readFile(b.path('rewritten'))).toString(), 'seed');
    for (const [i, size] of sizes.entries()) {
      const data = pattern(size, i);
      await writeFile(a.path('rewritten'), data);
      const got = await readFile(b.path('rewritten'));
      assert.ok(got.equals(data), `rewrite ${i} (${size} bytes written on A): B read stale data: ${diff(data, got)}`);
    }
  });

  test('B holds the file open: pread on the same fd sees A\'s overwrite, fstat sees A\'s append', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    const initial = pattern(256 * 1024, 1000);
    await writeFile(a.path('held'), initial);
    const fd = await open(b.path('held'), 'r');
    try {
      // B reads the whole file first, so that whatever it caches is the old contents.
      const whole = Buffer.alloc(initial.length);
      assert.equal((await fd.read(whole, 0, whole.length, 0)).bytesRead, initial.length);
      assert.ok(whole.equals(initial), 'B read the initial contents');

      const patchAt = 70_000;
      const patch = pattern(10_000, 1001);
      const fa = await open(a.path('held'), 'r+');
      try {
        assert.equal((await fa.write(patch, 0, patch.length, patchAt)).bytesWritten, patch.length);
      } finally {
        await fa.close();
      }
      const seen = Buffer.alloc(patch.length);
      const r = await fd.read(seen, 0, seen.length, patchAt);
      assert.equal(r.bytesRead, patch.length);
      assert.ok(seen.equals(patch), `B's pread on its open fd after A's overwrite at ${patchAt}: ${diff(patch, seen)} (stale page cache)`);
      const around = Buffer.alloc(4096);
      await fd.read(around, 0, around.length, patchAt - 4096);
      assert.ok(around.equals(initial.subarray(patchAt - 4096, patchAt)), 'the bytes before the overwrite are unchanged');

      const tail = pattern(5000, 1002);
      await appendFile(a.path('held'), tail);
      const st = await fd.stat();
      assert.equal(st.size, initial.length + tail.length, 'B\'s fstat on its open fd shows the size after A\'s append');
      const seenTail = Buffer.alloc(tail.length);
      const rt = await fd.read(seenTail, 0, tail.length, initial.length);
      assert.equal(rt.bytesRead, tail.length, 'B\'s pread past the old end returns the appended bytes');
      assert.ok(seenTail.equals(tail), `appended bytes as read by B: ${diff(tail, seenTail)}`);
    } finally {
      await fd.close();
    }
  });

  test('truncate on A is B\'s size at once; mtime and ctime agree to the nanosecond after a write and a touch -d', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await writeFile(a.path('sized'), pattern(1 << 20, 2000));
    assert.equal((await stat(b.path('sized'))).size, 1 << 20, 'B sees the first size');

    await shOk(`truncate -s 12345 ${a.path('sized')}`);
    assert.equal((await stat(b.path('sized'))).size, 12345, 'B sees the shrink by truncate on A');
    await shOk(`truncate -s 3000000 ${a.path('sized')}`);
    assert.equal((await stat(b.path('sized'))).size, 3_000_000, 'B sees the growth by truncate on A');
    const grown = await readFile(b.path('sized'));
    assert.ok(grown.subarray(0, 12345).equals(pattern(1 << 20, 2000).subarray(0, 12345)), 'the kept bytes survive');
    assert.ok(grown.subarray(12345).every((x) => x === 0), 'the bytes past the old size read as zeros');

    const times = async (path: string) => {
      const s = await stat(path, { bigint: true });
      return { size: s.size, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs };
    };
    const earlier = await times(b.path('sized'));
    await appendFile(a.path('sized'), 'more bytes');
    const onA = await times(a.path('sized'));
    assert.equal(onA.size, 3_000_010n);
    assert.deepEqual(await times(b.path('sized')), onA, `after a write on A, B's size/mtime/ctime equal A's (B had ${JSON.stringify(earlier, (_, v) => (typeof v === 'bigint' ? String(v) : v))})`);

    const when = '2001-02-03 04:05:06.123456789';
    const expectedNs = BigInt(await shOk(`date -d '${when}' +%s%N`));
    await shOk(`touch -m -d '${when}' ${a.path('sized')}`);
    const touchedA = await times(a.path('sized'));
    assert.equal(touchedA.mtimeNs, expectedNs, 'A shows the mtime it set');
    assert.deepEqual(await times(b.path('sized')), touchedA, 'after touch -d on A, B\'s size/mtime/ctime equal A\'s');
  });
});
