/**
 * The write-back cache's dirty extents against a plain Buffer model: any mix of writes
 * (small, adjacent, overlapping, larger than an RPC), takes for flushing, completions and
 * truncates keeps overlay() equal to the model and the byte counts exact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DirtyStore, objectKey } from '../src/client/cache/dirty-store.js';
import { mulberry32 } from './helpers/prng.js';

const RPC = 64 * 1024;
const SPAN = 1024 * 1024;

test('overlay and byte counts follow a model through writes, flushes and truncates', () => {
  for (let seed = 1; seed <= 5; seed++) {
    const rnd = mulberry32(seed);
    const int = (n: number) => Math.floor(rnd() * n);
    const store = new DirtyStore(RPC);
    const ref = { ost: 1, seq: 2, oid: 3 };
    const key = objectKey(ref);
    // model: the bytes a reader must see over the OST's (all zero here), and which are dirty
    const view = Buffer.alloc(SPAN);
    const dirty = new Uint8Array(SPAN);
    for (let step = 0; step < 2000; step++) {
      const op = int(10);
      if (op < 7) {
        const off = int(SPAN - 1);
        const len = 1 + int(Math.min(int(10) === 0 ? 3 * RPC : 9000, SPAN - off));
        const data = Buffer.alloc(len, 1 + int(250));
        store.write(ref, off, data, step);
        data.copy(view, off);
        dirty.fill(1, off, off + len);
      } else if (op < 9) {
        // flush some: what is taken stays visible until done, then it is on the "OST"
        for (const e of store.take(key, int(2) === 0 ? Infinity : step - int(50))) {
          dirty.fill(0, e.off, e.off + e.len);
          store.done(key, e);
        }
      } else {
        const size = int(SPAN);
        store.truncate(key, size);
        view.fill(0, size);
        dirty.fill(0, size);
      }
      const out = Buffer.alloc(SPAN);
      // bytes no longer dirty read back from the "OST", which got them when they were flushed
      for (let i = 0; i < SPAN; i++) if (!dirty[i]) out[i] = view[i]!;
      store.overlay(key, 0, out);
      assert.ok(out.equals(view), `seed ${seed}, step ${step}: overlay differs from the model`);
      const od = store.get(key);
      let sum = 0;
      for (const e of od?.extents ?? []) {
        sum += e.len;
        assert.ok(e.buf.length >= e.len, `seed ${seed}, step ${step}: an extent's buffer holds all its bytes`);
      }
      for (const e of od?.inflight ?? []) sum += e.len;
      assert.equal(store.bytes, sum, `seed ${seed}, step ${step}: byte count`);
    }
  }
});
