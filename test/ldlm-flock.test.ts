/** FLOCK resources: POSIX record locks per file and F_SETLKW deadlock detection (reference §3.2, ldlm_flock.c). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StriaError } from '../src/common/errno.js';
import { FLOCK_EOF, type FlockLock, type FlockRequest, FlockTable, FlockWaitGraph, type FlockType } from '../src/ldlm/flock.js';
import { mulberry32 } from './helpers/prng.js';

const lk = (owner: string, type: FlockType | 'unlock', start: number, end: number, pid = 100): FlockRequest => ({
  owner,
  pid,
  type,
  start,
  end,
});
const held = (owner: string, type: FlockType, start: number, end: number, pid = 100): FlockLock => ({ owner, pid, type, start, end });

function grant(table: FlockTable, req: FlockRequest): void {
  assert.deepEqual(table.set(req), { granted: true }, `${req.owner} ${req.type} [${req.start}, ${req.end}] should be granted`);
}

function assertEinval(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof StriaError && e.code === code && e.errno > 0 && e.message.length > 0);
}

describe('FLOCK table: conflicts', () => {
  test('readers of different owners share a range', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'read', 0, 99));
    grant(t, lk('b', 'read', 50, 149));
    assert.equal(t.test(held('c', 'read', 0, FLOCK_EOF)), undefined);
    assert.deepEqual(t.locks(), [held('a', 'read', 0, 99), held('b', 'read', 50, 149)]);
  });

  test('a write conflicts with an overlapping read or write of another owner, and nothing changes', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'read', 0, 99));
    grant(t, lk('b', 'write', 200, 299));
    const before = t.locks();
    assert.deepEqual(t.set(lk('c', 'write', 99, 200)), {
      granted: false,
      blockers: [held('a', 'read', 0, 99), held('b', 'write', 200, 299)],
    });
    assert.deepEqual(t.set(lk('c', 'read', 250, 250)), { granted: false, blockers: [held('b', 'write', 200, 299)] });
    assert.deepEqual(t.locks(), before, 'a refused request leaves the table untouched');
    grant(t, lk('c', 'write', 100, 199));
  });

  test('locks of one owner never conflict with each other', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'write', 0, 99));
    grant(t, lk('a', 'read', 50, 59));
    grant(t, lk('a', 'write', 0, FLOCK_EOF));
    assert.equal(t.test(held('a', 'write', 0, FLOCK_EOF)), undefined);
    assert.deepEqual(t.locks(), [held('a', 'write', 0, FLOCK_EOF)]);
  });

  test('F_GETLK reports the first conflicting lock with its owner, pid, type and range', () => {
    const t = new FlockTable();
    grant(t, lk('c', 'read', 10, 29, 333));
    grant(t, lk('b', 'read', 10, 19, 222));
    grant(t, lk('a', 'write', 40, 49, 111));
    assert.deepEqual(t.test(held('x', 'read', 0, 100)), held('a', 'write', 40, 49, 111), 'readers do not block a reader');
    assert.deepEqual(t.test(held('x', 'write', 15, 100)), held('b', 'read', 10, 19, 222), 'ties on start go by owner');
    assert.deepEqual(t.test(held('x', 'write', 25, 100)), held('c', 'read', 10, 29, 333));
    assert.deepEqual(t.test(held('b', 'write', 15, 100)), held('c', 'read', 10, 29, 333), 'the asker\'s own locks are skipped');
    assert.equal(t.test(held('x', 'write', 30, 39)), undefined);
    assert.equal(t.test(held('x', 'write', 50, FLOCK_EOF)), undefined);
  });

  test('returned locks are copies', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'write', 0, 9));
    t.locks()[0]!.end = 1000;
    t.test(held('b', 'read', 0, 0))!.type = 'read';
    assert.deepEqual(t.locks(), [held('a', 'write', 0, 9)]);
  });
});

describe('FLOCK table: split, merge, upgrade', () => {
  test('unlocking the middle of a lock splits it in two, each keeping its pid', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'write', 0, 99, 7));
    grant(t, lk('a', 'unlock', 40, 59, 8));
    assert.deepEqual(t.locks(), [held('a', 'write', 0, 39, 7), held('a', 'write', 60, 99, 7)]);
    grant(t, lk('b', 'write', 40, 59));
    grant(t, lk('a', 'unlock', 0, 49));
    assert.deepEqual(t.locks(), [held('b', 'write', 40, 59), held('a', 'write', 60, 99, 7)]);
  });

  test('adjacent and overlapping same-type ranges of one owner merge', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'read', 0, 9));
    grant(t, lk('a', 'read', 20, 29));
    grant(t, lk('a', 'read', 10, 19, 5));
    assert.deepEqual(t.locks(), [held('a', 'read', 0, 29, 5)]);
    grant(t, lk('a', 'read', 25, 40, 6));
    assert.deepEqual(t.locks(), [held('a', 'read', 0, 40, 6)]);
    grant(t, lk('b', 'read', 41, 50));
    assert.deepEqual(t.locks(), [held('a', 'read', 0, 40, 6), held('b', 'read', 41, 50)], 'other owners never merge');
  });

  test('a write inside a read range of the same owner yields read, write, read', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'read', 0, 99));
    grant(t, lk('a', 'write', 30, 49));
    assert.deepEqual(t.locks(), [held('a', 'read', 0, 29), held('a', 'write', 30, 49), held('a', 'read', 50, 99)]);
    assert.deepEqual(t.test(held('b', 'read', 0, 99)), held('a', 'write', 30, 49));
    grant(t, lk('b', 'read', 0, 29));
    grant(t, lk('a', 'read', 30, 49));
    assert.deepEqual(t.locks(), [held('a', 'read', 0, 99), held('b', 'read', 0, 29)], 'the downgrade merges back');
  });

  test('an upgrade blocked by another reader is refused and keeps the read lock', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'read', 0, 99));
    grant(t, lk('b', 'read', 90, 109));
    assert.deepEqual(t.set(lk('a', 'write', 0, 99)), { granted: false, blockers: [held('b', 'read', 90, 109)] });
    assert.deepEqual(t.locks(), [held('a', 'read', 0, 99), held('b', 'read', 90, 109)]);
    grant(t, lk('a', 'write', 0, 89));
  });

  test('unlock by an owner holding nothing there is a no-op that succeeds', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'write', 0, 99));
    grant(t, lk('b', 'unlock', 0, FLOCK_EOF));
    grant(t, lk('a', 'unlock', 200, 300));
    assert.deepEqual(t.locks(), [held('a', 'write', 0, 99)]);
  });

  test('EOF ranges: lock to EOF, unlock the tail, cover to EOF', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'write', 4096, FLOCK_EOF));
    assert.deepEqual(t.test(held('b', 'read', FLOCK_EOF, FLOCK_EOF)), held('a', 'write', 4096, FLOCK_EOF));
    assert.equal(t.test(held('b', 'read', 0, 4095)), undefined);
    grant(t, lk('a', 'unlock', 8192, FLOCK_EOF));
    assert.deepEqual(t.locks(), [held('a', 'write', 4096, 8191)]);
    grant(t, lk('b', 'read', 8192, FLOCK_EOF));
    grant(t, lk('a', 'unlock', 5000, 5000));
    grant(t, lk('a', 'write', 0, 8191));
    assert.deepEqual(t.locks(), [held('a', 'write', 0, 8191), held('b', 'read', 8192, FLOCK_EOF)]);
    grant(t, lk('b', 'unlock', FLOCK_EOF, FLOCK_EOF));
    assert.deepEqual(t.locks(), [held('a', 'write', 0, 8191), held('b', 'read', 8192, FLOCK_EOF - 1)]);
  });

  test('bad ranges, types and owners are EINVAL', () => {
    const t = new FlockTable();
    for (const [start, end] of [
      [-1, 5],
      [5, 4],
      [0.5, 4],
      [0, FLOCK_EOF + 1],
      [0, Number.POSITIVE_INFINITY],
      [Number.NaN, 3],
    ] as const) {
      assertEinval(() => t.set(lk('a', 'write', start, end)), 'FLOCK_BAD_RANGE');
      assertEinval(() => t.set(lk('a', 'unlock', start, end)), 'FLOCK_BAD_RANGE');
      assertEinval(() => t.test(held('a', 'read', start, end)), 'FLOCK_BAD_RANGE');
    }
    assertEinval(() => t.set(lk('a', 'exclusive' as FlockType, 0, 1)), 'FLOCK_BAD_REQUEST');
    assertEinval(() => t.test(held('a', 'unlock' as FlockType, 0, 1)), 'FLOCK_BAD_REQUEST');
    assertEinval(() => t.set({ ...lk('a', 'read', 0, 1), owner: undefined as unknown as string }), 'FLOCK_BAD_REQUEST');
    assertEinval(() => t.set(lk('a', 'read', 0, 1, 1.5)), 'FLOCK_BAD_REQUEST');
    assert.ok(t.isEmpty());
  });
});

describe('FLOCK table: release', () => {
  test('releaseOwner drops every lock of that owner and lets blocked requests in', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'write', 0, 9));
    grant(t, lk('a', 'read', 20, 29));
    grant(t, lk('b', 'read', 20, 29));
    assert.equal(t.set(lk('c', 'write', 0, 29)).granted, false);
    t.releaseOwner('a');
    assert.deepEqual(t.locks(), [held('b', 'read', 20, 29)]);
    grant(t, lk('c', 'write', 0, 19));
    t.releaseOwner('nobody');
    t.releaseOwner('b');
    t.releaseOwner('c');
    assert.ok(t.isEmpty());
    assert.deepEqual(t.locks(), []);
  });

  test('releaseOwnersMatching drops all owners of one client only', () => {
    const t = new FlockTable();
    grant(t, lk('client1:1', 'read', 0, 9));
    grant(t, lk('client1:2', 'read', 5, 14));
    grant(t, lk('client2:1', 'read', 0, 9));
    t.releaseOwnersMatching((owner) => owner.startsWith('client1:'));
    assert.deepEqual(t.locks(), [held('client2:1', 'read', 0, 9)]);
    assert.equal(t.isEmpty(), false);
  });

  test('unlocking everything empties the table', () => {
    const t = new FlockTable();
    grant(t, lk('a', 'write', 10, 20));
    assert.equal(t.isEmpty(), false);
    grant(t, lk('a', 'unlock', 0, FLOCK_EOF));
    assert.ok(t.isEmpty());
  });
});

describe('BSD flock(2) as whole-file locks in a separate table', () => {
  test('shared by two descriptions, exclusive blocked, upgrade once alone; fcntl locks do not interact', () => {
    const flocks = new FlockTable();
    const posix = new FlockTable();
    const whole = (ofd: string, type: FlockType | 'unlock') => lk(ofd, type, 0, FLOCK_EOF);
    grant(posix, lk('proc9', 'write', 0, FLOCK_EOF));

    grant(flocks, whole('ofd1', 'read'));
    grant(flocks, whole('ofd2', 'read'));
    assert.deepEqual(flocks.set(whole('ofd3', 'write')), {
      granted: false,
      blockers: [held('ofd1', 'read', 0, FLOCK_EOF), held('ofd2', 'read', 0, FLOCK_EOF)],
    });
    assert.equal(flocks.set(whole('ofd1', 'write')).granted, false, 'no upgrade while another description shares it');
    grant(flocks, whole('ofd2', 'unlock'));
    grant(flocks, whole('ofd1', 'write'));
    assert.deepEqual(flocks.locks(), [held('ofd1', 'write', 0, FLOCK_EOF)]);
    assert.deepEqual(flocks.test(held('ofd3', 'read', 0, FLOCK_EOF)), held('ofd1', 'write', 0, FLOCK_EOF));
    assert.deepEqual(posix.locks(), [held('proc9', 'write', 0, FLOCK_EOF)], 'the fcntl table is untouched');
  });
});

describe('FLOCK wait graph: EDEADLK', () => {
  test('two owners waiting for each other', () => {
    const g = new FlockWaitGraph();
    assert.equal(g.wouldDeadlock('a', ['b']), false);
    g.addWait('a', ['b']);
    assert.equal(g.wouldDeadlock('b', ['a']), true);
    g.removeWait('a');
    assert.equal(g.wouldDeadlock('b', ['a']), false);
  });

  test('a three-owner cycle is found through the intermediate waiter', () => {
    const g = new FlockWaitGraph();
    g.addWait('a', ['b']);
    g.addWait('b', ['x', 'c']);
    assert.equal(g.wouldDeadlock('c', ['y', 'a']), true);
    assert.equal(g.wouldDeadlock('c', ['y']), false);
  });

  test('a chain of waits is no deadlock', () => {
    const g = new FlockWaitGraph();
    g.addWait('a', ['b']);
    g.addWait('b', ['c']);
    g.addWait('c', ['d']);
    assert.equal(g.wouldDeadlock('e', ['a']), false);
    assert.equal(g.wouldDeadlock('d', ['e']), false);
    assert.equal(g.wouldDeadlock('d', ['a']), true);
  });

  test('addWait replaces the previous holders of a waiter', () => {
    const g = new FlockWaitGraph();
    g.addWait('a', ['b']);
    g.addWait('a', ['c']);
    assert.equal(g.wouldDeadlock('b', ['a']), false);
    assert.equal(g.wouldDeadlock('c', ['a']), true);
  });

  test('existing cycles among others end the traversal without a false positive', () => {
    const g = new FlockWaitGraph();
    g.addWait('p', ['q']);
    g.addWait('q', ['r']);
    g.addWait('r', ['p']);
    g.addWait('s', ['p', 'q', 'r']);
    assert.equal(g.wouldDeadlock('t', ['s', 'p']), false);
    assert.equal(g.wouldDeadlock('p', ['s']), true);
  });
});

describe('FLOCK table against a per-byte model', () => {
  test('2000 random operations by 3 owners over bytes 0..63 and a tail to EOF', () => {
    // Cells 0..63 are single bytes; cell 64 stands for [64, EOF], which every request
    // covers wholly or not at all, so it behaves as one byte.
    const CELLS = 65;
    const TAIL = 64;
    const OWNERS = ['o1', 'o2', 'o3'];
    const rand = mulberry32(0x5eed);
    const pick = (n: number) => Math.floor(rand() * n);
    const table = new FlockTable();
    const model: Map<string, FlockType>[] = Array.from({ length: CELLS }, () => new Map());
    const cellsOf = (start: number, end: number) => {
      const last = end === FLOCK_EOF ? TAIL : end;
      return Array.from({ length: last - start + 1 }, (_, i) => start + i);
    };
    const conflictingOwners = (owner: string, type: FlockType, start: number, end: number) => {
      const owners = new Set<string>();
      for (const c of cellsOf(start, end)) {
        for (const [o, t] of model[c]!) if (o !== owner && (t === 'write' || type === 'write')) owners.add(o);
      }
      return owners;
    };
    const counts = { granted: 0, refused: 0, released: 0 };

    for (let step = 0; step < 2000; step++) {
      const ctx = `step ${step}`;
      const owner = OWNERS[pick(OWNERS.length)]!;
      if (pick(40) === 0) {
        table.releaseOwner(owner);
        for (const cell of model) cell.delete(owner);
        counts.released++;
      } else {
        const type = (['read', 'write', 'unlock'] as const)[pick(3)]!;
        const start = pick(64);
        const end = pick(5) === 0 ? FLOCK_EOF : start + pick(Math.min(16, 64 - start));
        const expected = type === 'unlock' ? new Set<string>() : conflictingOwners(owner, type, start, end);

        if (type !== 'unlock') {
          const probe = table.test({ owner, pid: step, type, start, end });
          assert.equal(probe !== undefined, expected.size > 0, `${ctx}: F_GETLK agrees with the model`);
          if (probe) {
            const firstConflict = table
              .locks()
              .find((l) => l.owner !== owner && (l.type === 'write' || type === 'write') && l.start <= end && start <= l.end);
            assert.deepEqual(probe, firstConflict, `${ctx}: F_GETLK returns the first conflicting lock`);
          }
        }

        const before = table.locks();
        const result = table.set({ owner, pid: step, type, start, end });
        assert.equal(result.granted, expected.size === 0, `${ctx}: ${owner} ${type} [${start}, ${end}] decision`);
        if (result.granted) {
          counts.granted++;
          for (const c of cellsOf(start, end)) {
            if (type === 'unlock') model[c]!.delete(owner);
            else model[c]!.set(owner, type);
          }
        } else {
          counts.refused++;
          assert.deepEqual(new Set(result.blockers.map((l) => l.owner)), expected, `${ctx}: blockers name the conflicting owners`);
          for (const b of result.blockers) {
            assert.ok(b.owner !== owner && b.start <= end && start <= b.end && (b.type === 'write' || type === 'write'), `${ctx}: blocker conflicts`);
          }
          assert.deepEqual(table.locks(), before, `${ctx}: refused request changes nothing`);
        }
      }

      const locks = table.locks();
      const actual: Map<string, FlockType>[] = Array.from({ length: CELLS }, () => new Map());
      for (const l of locks) {
        assert.ok(l.end <= 63 || l.end === FLOCK_EOF, `${ctx}: lock ends on a byte or at EOF`);
        assert.ok(l.start <= TAIL, `${ctx}: lock starts within the modelled range`);
        for (const c of cellsOf(l.start, l.end)) {
          assert.equal(actual[c]!.has(l.owner), false, `${ctx}: an owner's locks are disjoint`);
          actual[c]!.set(l.owner, l.type);
        }
      }
      for (let c = 0; c < CELLS; c++) {
        assert.deepEqual(actual[c], model[c], `${ctx}: holders of cell ${c}`);
      }
      for (let i = 1; i < locks.length; i++) {
        const [a, b] = [locks[i - 1]!, locks[i]!];
        assert.ok(a.start < b.start || (a.start === b.start && a.owner < b.owner), `${ctx}: locks() is sorted`);
      }
      for (const o of OWNERS) {
        const own = locks.filter((l) => l.owner === o);
        for (let i = 1; i < own.length; i++) {
          const adjoining = own[i - 1]!.end + 1 === own[i]!.start;
          assert.ok(!(adjoining && own[i - 1]!.type === own[i]!.type), `${ctx}: same-type neighbours of ${o} are merged`);
        }
      }
      assert.equal(table.isEmpty(), locks.length === 0);
    }
    assert.ok(counts.granted > 500 && counts.refused > 100 && counts.released > 10, `the run exercised every path: ${JSON.stringify(counts)}`);
  });
});
