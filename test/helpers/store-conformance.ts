/**
 * What every MetadataStore backend must do (src/mds/store/types.ts). Each
 * backend's test file calls storeConformance() with a function that opens
 * the same store every time it is called (so reopening shows durability).
 * Tests use their own random key prefix, so the store may be shared.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import type { MetadataStore } from '../../src/mds/store/types.js';

export function storeConformance(name: string, open: () => Promise<MetadataStore>): void {
  const withStore = async (fn: (s: MetadataStore, p: string) => Promise<void>): Promise<void> => {
    const s = await open();
    try {
      await fn(s, `t${randomUUID().slice(0, 8)}:`);
    } finally {
      await s.close();
    }
  };

  describe(`MetadataStore conformance: ${name}`, () => {
    test('values round-trip: numbers up to 2^53, strings, nested objects, arrays, Buffers, null, booleans', () =>
      withStore(async (s, p) => {
        const values: Record<string, unknown> = {
          int: 42,
          neg: -7,
          big: 2 ** 53 - 1,
          fidSeq: 0x200000400,
          float: 1.5,
          str: 'héllo 🌍',
          obj: { fid: { seq: 0x200000007, oid: 1, ver: 0 }, nested: { a: [1, 2, { b: 'c' }] }, t: true, f: false, n: null },
          arr: ['x', 1, null],
          buf: Buffer.from([0, 1, 2, 255]),
          empty: Buffer.alloc(0),
          nul: null,
        };
        await s.transact(async (tx) => {
          for (const [k, v] of Object.entries(values)) tx.put(p + k, v);
        });
        for (const [k, v] of Object.entries(values)) {
          const got = await s.get(p + k);
          assert.deepEqual(got, v, k);
          if (Buffer.isBuffer(v)) assert.ok(Buffer.isBuffer(got), `${k} comes back as a Buffer`);
        }
        assert.equal(await s.get(p + 'missing'), undefined);
      }));

    test('changing a value read back does not change the store', () =>
      withStore(async (s, p) => {
        await s.transact(async (tx) => tx.put(p + 'o', { list: [1], buf: Buffer.from('abc') }));
        const a = (await s.get<{ list: number[]; buf: Buffer }>(p + 'o'))!;
        a.list.push(2);
        a.buf[0] = 0x7a;
        assert.deepEqual(await s.get(p + 'o'), { list: [1], buf: Buffer.from('abc') });
        await s.transact(async (tx) => {
          const v = { n: 1 };
          tx.put(p + 'w', v);
          v.n = 2; // put takes a copy
          const r = (await tx.get<{ n: number }>(p + 'w'))!;
          r.n = 3;
          assert.deepEqual(await tx.get(p + 'w'), { n: 1 });
        });
        assert.deepEqual(await s.get(p + 'w'), { n: 1 });
      }));

    test('del removes a key; deleting a missing key is harmless', () =>
      withStore(async (s, p) => {
        await s.transact(async (tx) => {
          tx.put(p + 'a', 1);
          tx.put(p + 'b', 2);
        });
        await s.transact(async (tx) => {
          tx.del(p + 'a');
          tx.del(p + 'never');
        });
        assert.equal(await s.get(p + 'a'), undefined);
        assert.equal(await s.get(p + 'b'), 2);
      }));

    test('scan returns keys with the prefix in UTF-8 byte order, after a position, up to a limit', () =>
      withStore(async (s, p) => {
        // UTF-8 byte order differs from JS string order for astral characters
        const keys = ['a', 'a:', 'a:1', 'a:10', 'a:2', 'a:\u00e9', 'a:\uffff', 'a:\u{10000}', 'a:\u{10ffff}', 'a;', 'b'];
        await s.transact(async (tx) => {
          for (const k of [...keys].reverse()) tx.put(p + k, k);
        });
        const all = await s.scan<string>(p + 'a:', undefined, 100);
        assert.deepEqual(all.map(([k]) => k), ['a:', 'a:1', 'a:10', 'a:2', 'a:\u00e9', 'a:\uffff', 'a:\u{10000}', 'a:\u{10ffff}'].map((k) => p + k));
        assert.deepEqual(all.map(([, v]) => v), ['a:', 'a:1', 'a:10', 'a:2', 'a:\u00e9', 'a:\uffff', 'a:\u{10000}', 'a:\u{10ffff}']);
        const page = await s.scan<string>(p + 'a:', p + 'a:10', 2);
        assert.deepEqual(page.map(([k]) => k), [p + 'a:2', p + 'a:\u00e9']);
        const astral = await s.scan<string>(p + 'a:', p + 'a:\uffff', 10);
        assert.deepEqual(astral.map(([, v]) => v), ['a:\u{10000}', 'a:\u{10ffff}']);
        assert.deepEqual(await s.scan(p + 'a:', undefined, 0), []);
        assert.deepEqual(await s.scan(p + 'a:', p + 'a;', 10), [], 'after beyond the prefix range');
        assert.deepEqual((await s.scan(p + 'a:', p + '0', 1)).map(([k]) => k), [p + 'a:'], 'after before the prefix range');
        assert.deepEqual(await s.scan(p + 'zz', undefined, 10), []);
      }));

    test('a transaction reads its own writes, deletions included, in get and scan', () =>
      withStore(async (s, p) => {
        await s.transact(async (tx) => {
          for (const k of ['1', '2', '3', '4']) tx.put(p + k, `old${k}`);
        });
        await s.transact(async (tx) => {
          tx.put(p + '2', 'new2');
          tx.del(p + '3');
          tx.put(p + '5', 'new5');
          tx.put(p + '0', 'new0');
          assert.equal(await tx.get(p + '2'), 'new2');
          assert.equal(await tx.get(p + '3'), undefined);
          const rows = await tx.scan<string>(p, undefined, 10);
          assert.deepEqual(rows, [[p + '0', 'new0'], [p + '1', 'old1'], [p + '2', 'new2'], [p + '4', 'old4'], [p + '5', 'new5']]);
          assert.deepEqual((await tx.scan<string>(p, p + '1', 2)).map(([k]) => k), [p + '2', p + '4']);
          tx.del(p + '5');
          assert.deepEqual((await tx.scan<string>(p, p + '2', 10)).map(([k]) => k), [p + '4']);
        });
        assert.deepEqual((await s.scan<string>(p, undefined, 10)).map(([k, v]) => `${k.slice(p.length)}=${v}`), ['0=new0', '1=old1', '2=new2', '4=old4']);
      }));

    test('a transaction whose function throws leaves nothing behind, and the store carries on', () =>
      withStore(async (s, p) => {
        await s.transact(async (tx) => tx.put(p + 'keep', 1));
        await assert.rejects(
          s.transact(async (tx) => {
            tx.put(p + 'keep', 2);
            tx.put(p + 'new', 3);
            tx.del(p + 'keep');
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.equal(await s.get(p + 'keep'), 1);
        assert.equal(await s.get(p + 'new'), undefined);
        assert.equal(await s.transact(async (tx) => ((await tx.get<number>(p + 'keep')) ?? 0) + 1), 2);
      }));

    test('concurrent read-modify-write transactions are serialisable', () =>
      withStore(async (s, p) => {
        const n = 200;
        const results = await Promise.all(
          Array.from({ length: n }, () =>
            s.transact(async (tx) => {
              const v = (await tx.get<number>(p + 'ctr')) ?? 0;
              await new Promise((r) => setImmediate(r)); // interleave with the others
              tx.put(p + 'ctr', v + 1);
              return v + 1;
            }),
          ),
        );
        assert.equal(await s.get(p + 'ctr'), n);
        assert.deepEqual([...results].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1));
      }));

    test('concurrent scan-then-insert transactions each see all earlier inserts', () =>
      withStore(async (s, p) => {
        const n = 100;
        await Promise.all(
          Array.from({ length: n }, () =>
            s.transact(async (tx) => {
              const rows = await tx.scan(p + 'slot:', undefined, n + 1);
              tx.put(`${p}slot:${String(rows.length).padStart(4, '0')}`, rows.length);
            }),
          ),
        );
        const rows = await s.scan<number>(p + 'slot:', undefined, n + 10);
        assert.deepEqual(rows.map(([, v]) => v), Array.from({ length: n }, (_, i) => i));
      }));

    test('a transaction sees deletions made by an earlier one that is still committing', () =>
      withStore(async (s, p) => {
        await s.transact(async (tx) => {
          for (let i = 0; i < 6; i++) tx.put(`${p}${i}`, i);
        });
        const del = s.transact(async (tx) => {
          tx.del(`${p}2`);
          tx.del(`${p}3`);
          tx.put(`${p}9`, 9);
        });
        const seen = await s.transact(async (tx) => (await tx.scan<number>(p, undefined, 100)).map(([, v]) => v));
        await del;
        assert.deepEqual(seen, [0, 1, 4, 5, 9]);
      }));

    test('writes are visible to get and scan once transact resolves', () =>
      withStore(async (s, p) => {
        for (let i = 0; i < 20; i++) {
          await s.transact(async (tx) => tx.put(`${p}${String(i).padStart(2, '0')}`, i));
          assert.equal(await s.get(`${p}${String(i).padStart(2, '0')}`), i);
          assert.equal((await s.scan(p, undefined, 100)).length, i + 1);
        }
      }));

    test('transact resolves with the function result', () =>
      withStore(async (s, p) => {
        assert.deepEqual(await s.transact(async () => ({ ok: true })), { ok: true });
        assert.equal(await s.transact(async (tx) => tx.get(p + 'none')), undefined);
      }));

    test('a large transaction commits as a whole and survives closing and reopening', async () => {
      const p = `t${randomUUID().slice(0, 8)}:`;
      const big = Buffer.alloc(256 * 1024, 0xab);
      let s = await open();
      try {
        await s.transact(async (tx) => {
          for (let i = 0; i < 10_000; i++) tx.put(`${p}k:${String(i).padStart(5, '0')}`, { i });
          tx.put(p + 'big', big);
        });
      } finally {
        await s.close();
      }
      s = await open();
      try {
        let count = 0;
        let after: string | undefined;
        for (let page = 0; page < 100; page++) {
          const rows = await s.scan<{ i: number }>(p + 'k:', after, 777);
          for (const [, v] of rows) assert.equal(v.i, count++);
          if (rows.length < 777) break;
          after = rows[rows.length - 1]![0];
        }
        assert.equal(count, 10_000);
        assert.deepEqual(await s.get(p + 'big'), big);
      } finally {
        await s.close();
      }
    });

    test('close waits for transactions already started', async () => {
      const p = `t${randomUUID().slice(0, 8)}:`;
      let s = await open();
      const pending = Array.from({ length: 50 }, (_, i) => s.transact(async (tx) => tx.put(`${p}${i}`, i)));
      const settled = Promise.allSettled(pending);
      await s.close();
      await assert.rejects(s.transact(async () => undefined), 'a closed store refuses transactions');
      const outcomes = await settled;
      s = await open();
      try {
        for (let i = 0; i < 50; i++) {
          assert.equal(outcomes[i]!.status, 'fulfilled', `transaction ${i} was called before close`);
          assert.equal(await s.get(`${p}${i}`), i);
        }
      } finally {
        await s.close();
      }
    });

    test('paging through a scan sees every key once while other keys come and go', () =>
      withStore(async (s, p) => {
        await s.transact(async (tx) => {
          for (let i = 0; i < 3000; i++) tx.put(`${p}${String(i * 2).padStart(6, '0')}`, 'stable');
        });
        const seen = new Set<string>();
        let after: string | undefined;
        for (let page = 0; page < 1000; page++) {
          const rows = await s.scan<string>(p, after, 97);
          for (const [k, v] of rows) if (v === 'stable') {
            assert.ok(!seen.has(k), `${k} listed twice`);
            seen.add(k);
          }
          // odd keys appear and disappear between pages
          await s.transact(async (tx) => {
            tx.put(`${p}${String(page * 6 + 1).padStart(6, '0')}`, 'churn');
            if (page > 0) tx.del(`${p}${String((page - 1) * 6 + 1).padStart(6, '0')}`);
          });
          if (rows.length < 97) break;
          after = rows[rows.length - 1]![0];
        }
        assert.equal(seen.size, 3000);
      }));

    test('a transaction cannot be used after its function returned', () =>
      withStore(async (s, p) => {
        let leaked: { put(k: string, v: unknown): void } | undefined;
        await s.transact(async (tx) => {
          leaked = tx;
        });
        assert.throws(() => leaked!.put(p + 'late', 1));
        assert.equal(await s.get(p + 'late'), undefined);
      }));

    test('bad keys and scan arguments are refused', () =>
      withStore(async (s, p) => {
        await assert.rejects(s.transact(async (tx) => tx.put('', 1)));
        await assert.rejects(s.transact(async (tx) => tx.put(p + 'x'.repeat(5000), 1)));
        await assert.rejects(s.transact(async (tx) => tx.put(p + '\ud800', 1)));
        await assert.rejects(s.scan(p, undefined, -1));
        await assert.rejects(s.scan(p, undefined, 1.5));
      }));
  });
}

/**
 * Crash tests write transactions of three records r:<n>:a|b|c: transactions numbered
 * 0..count-1 must all be complete, and nothing beyond them may exist.
 */
export async function checkCommittedTriples(s: MetadataStore, count: number): Promise<void> {
  let n = 0;
  let pos: string | undefined;
  for (let page = 0; page < 10_000; page++) {
    const rows = await s.scan<{ n: number; part: string }>('r:', pos, 999);
    for (const [key, v] of rows) {
      const i = Math.floor(n / 3);
      const part = ['a', 'b', 'c'][n % 3]!;
      assert.equal(key, `r:${String(i).padStart(8, '0')}:${part}`, 'records are complete triples in order');
      assert.deepEqual(v, { n: i, part });
      n++;
    }
    if (rows.length < 999) break;
    pos = rows[rows.length - 1]![0];
  }
  assert.equal(n, count * 3, 'exactly the committed transactions are present');
}
