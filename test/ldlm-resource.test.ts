/** A server-side LDLM resource: grant, wait, blocking-AST targets, cancel and reprocess (reference §3.3). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EXTENT_EOF } from '../src/ldlm/extent.js';
import { InodeBit } from '../src/ldlm/inodebits.js';
import { LockMode } from '../src/ldlm/modes.js';
import { type ExtentLock, LdlmResource } from '../src/ldlm/resource.js';

const MiB = 1024 * 1024;
const { EX, PW, PR, CR, GROUP } = LockMode;
const WHOLE = { start: 0, end: EXTENT_EOF };
const page = (start: number) => ({ start, end: start + 4095 });
const ids = (locks: readonly { id: number }[]) => locks.map((l) => l.id);
const ext = (id: number, owner: string, mode: LockMode, extent = WHOLE, gid?: number): ExtentLock =>
  gid === undefined ? { id, owner, mode, extent } : { id, owner, mode, extent, gid };

describe('LDLM resource: extent locks', () => {
  test('compatible locks are granted together, each grown as far as it may', () => {
    const res = new LdlmResource('extent');
    const a = res.enqueue(ext(1, 'c1', PR, page(0)));
    const b = res.enqueue(ext(2, 'c2', PR, page(8 * MiB)));
    assert.equal(a.status, 'granted');
    assert.deepEqual(a.lock.extent, WHOLE, 'a lone reader gets [0, EOF]');
    assert.equal(b.status, 'granted');
    assert.deepEqual(b.lock.extent, WHOLE, 'readers do not limit each other');
    assert.deepEqual(ids(res.grantedLocks()), [1, 2]);
  });

  test('a conflicting request waits and names the granted holders to call back', () => {
    const res = new LdlmResource('extent');
    res.enqueue(ext(1, 'c1', PR, page(0)));
    res.enqueue(ext(2, 'c2', PR, page(4096)));
    const w = res.enqueue(ext(3, 'c3', PW, page(1 * MiB)));
    assert.equal(w.status, 'waiting');
    assert.deepEqual(ids(w.conflicts), [1, 2], 'both grown read locks cover the write');
    assert.deepEqual(w.lock.extent, page(1 * MiB), 'a waiter keeps its requested extent');
    assert.deepEqual(ids(res.waitingLocks()), [3]);
  });

  test('a cancelled conflicting lock lets the waiter in, grown on grant', () => {
    const res = new LdlmResource('extent');
    res.enqueue(ext(1, 'c1', PW, page(0)));
    assert.equal(res.enqueue(ext(2, 'c2', PW, page(4 * MiB))).status, 'waiting');
    const r = res.cancel(1);
    assert.equal(r.cancelled?.id, 1);
    assert.deepEqual(ids(r.granted), [2]);
    assert.deepEqual(r.granted[0]!.extent, WHOLE);
    assert.equal(res.find(2)?.state, 'granted');
    assert.equal(res.find(1), undefined);
  });

  test('growth respects locks already granted: the second writer does not cover the first', () => {
    const res = new LdlmResource('extent');
    res.enqueue(ext(1, 'c1', PW, page(0)), { noExpansion: true });
    const b = res.enqueue(ext(2, 'c2', PW, page(1 * MiB)));
    assert.equal(b.status, 'granted');
    assert.deepEqual(b.lock.extent, { start: 1 * MiB, end: EXTENT_EOF });
  });

  test('FIFO: a later compatible request does not overtake an earlier conflicting waiter', () => {
    const res = new LdlmResource('extent');
    res.enqueue(ext(1, 'c1', PR));
    assert.equal(res.enqueue(ext(2, 'c2', PW, page(0))).status, 'waiting');
    const late = res.enqueue(ext(3, 'c3', PR, page(0)));
    assert.equal(late.status, 'waiting', 'compatible with the granted reader, but the writer came first');
    assert.deepEqual(late.conflicts, [], 'nothing granted needs calling back for it');
    assert.deepEqual(ids(res.cancel(1).granted), [2], 'the writer goes first');
    assert.deepEqual(ids(res.waitingLocks()), [3]);
    assert.deepEqual(ids(res.cancel(2).granted), [3]);
  });

  test('waiters compatible with each other are granted together, in queue order', () => {
    const res = new LdlmResource('extent');
    res.enqueue(ext(1, 'c1', PW));
    res.enqueue(ext(2, 'c2', PR, page(0)));
    res.enqueue(ext(3, 'c3', PR, page(8 * MiB)));
    res.enqueue(ext(4, 'c4', PW, page(0)));
    assert.deepEqual(ids(res.cancel(1).granted), [2, 3]);
    assert.deepEqual(ids(res.waitingLocks()), [4]);
  });

  test('a waiter that gives up lets the ones behind it in', () => {
    const res = new LdlmResource('extent');
    res.enqueue(ext(1, 'c1', PR));
    res.enqueue(ext(2, 'c2', PW, page(0)));
    res.enqueue(ext(3, 'c3', PR, page(0)));
    const r = res.cancel(2);
    assert.equal(r.cancelled?.id, 2);
    assert.deepEqual(ids(r.granted), [3]);
  });

  test('a grant made on reprocess does not cover the waiters still queued', () => {
    const res = new LdlmResource('extent');
    res.enqueue(ext(1, 'c1', EX));
    res.enqueue(ext(2, 'c2', PW, page(0)));
    res.enqueue(ext(3, 'c3', PW, page(8 * MiB)));
    res.enqueue(ext(4, 'c4', PR, { start: 0, end: 8191 }));
    const r = res.cancel(1);
    assert.deepEqual(ids(r.granted), [2, 3]);
    assert.deepEqual(r.granted[0]!.extent, { start: 0, end: 8 * MiB - 1 }, 'stops below waiter 3; overlapping waiter 4 is ignored');
    assert.deepEqual(r.granted[1]!.extent, { start: 8 * MiB, end: EXTENT_EOF }, 'no downward growth past granted 2');
    assert.deepEqual(ids(res.waitingLocks()), [4]);
  });

  test('BLOCK_NOWAIT refuses instead of queueing', () => {
    const res = new LdlmResource('extent');
    res.enqueue(ext(1, 'c1', PW));
    const r = res.enqueue(ext(2, 'c2', PR, page(0)), { blockNoWait: true });
    assert.equal(r.status, 'refused');
    assert.deepEqual(r.conflicts, []);
    assert.deepEqual(res.waitingLocks(), []);
    assert.equal(res.enqueue(ext(3, 'c2', PR, page(0)), { blockNoWait: true }).status, 'refused');
  });

  test('evicting a client cancels all its locks and unblocks waiters', () => {
    const res = new LdlmResource('extent');
    res.enqueue(ext(1, 'c1', PR, page(0)));
    res.enqueue(ext(2, 'c1', PR, page(4 * MiB)));
    res.enqueue(ext(3, 'c2', PW, page(0)));
    res.enqueue(ext(4, 'c1', PR, page(8 * MiB)));
    const r = res.cancelOwner('c1');
    assert.deepEqual(ids(r.cancelled), [1, 2, 4]);
    assert.deepEqual(ids(r.granted), [3]);
    assert.deepEqual(res.cancelOwner('nobody'), { cancelled: [], granted: [] });
  });

  test('unknown ids, duplicates and malformed locks', () => {
    const res = new LdlmResource('extent');
    assert.deepEqual(res.cancel(99), { cancelled: undefined, granted: [] });
    res.enqueue(ext(1, 'c1', PR));
    assert.throws(() => res.enqueue(ext(1, 'c2', PR)), { code: 'LDLM_DUP_LOCK' });
    assert.throws(() => res.enqueue(ext(2, 'c2', PR, { start: 9, end: 1 })), { code: 'LDLM_BAD_EXTENT' });
    assert.throws(() => res.enqueue({ id: 3, owner: 'c2', mode: 3 as LockMode, extent: WHOLE }), { code: 'LDLM_BAD_MODE' });
    assert.throws(() => res.enqueue(ext(4, 'c2', GROUP)), { code: 'LDLM_BAD_GID' });
  });
});

describe('LDLM resource: GROUP locks', () => {
  test('same gid shares at once, even past waiters; others wait; group holders get no blocking AST', () => {
    const res = new LdlmResource('extent');
    assert.equal(res.enqueue(ext(1, 'c1', GROUP, WHOLE, 7)).status, 'granted');
    assert.equal(res.enqueue(ext(2, 'c2', GROUP, WHOLE, 7)).status, 'granted');
    const pw = res.enqueue(ext(3, 'c3', PW, page(1 * MiB)));
    assert.equal(pw.status, 'waiting', 'a group lock covers the whole object');
    assert.deepEqual(pw.conflicts, [], 'group locks are released by their holders, not called back');
    assert.equal(res.enqueue(ext(4, 'c4', GROUP, WHOLE, 8)).status, 'waiting', 'another gid waits');
    assert.equal(res.enqueue(ext(5, 'c4', GROUP, WHOLE, 7)).status, 'granted', 'the granted gid is joined past waiters');
    res.cancel(1);
    res.cancel(2);
    assert.deepEqual(ids(res.cancel(5).granted), [4], 'gid 8 was queued ahead of the PW waiter');
    assert.deepEqual(ids(res.cancel(4).granted), [3]);
  });

  test('waiting group locks of one gid queue together, ahead of ordinary waiters, and are granted together', () => {
    const res = new LdlmResource('extent');
    res.enqueue(ext(1, 'c1', PR, page(0)));
    res.enqueue(ext(2, 'c2', PW, page(0)));
    res.enqueue(ext(3, 'c3', GROUP, WHOLE, 5));
    res.enqueue(ext(4, 'c4', GROUP, WHOLE, 6));
    res.enqueue(ext(5, 'c5', GROUP, WHOLE, 5));
    assert.deepEqual(ids(res.waitingLocks()), [3, 5, 4, 2]);
    const r = res.cancel(1);
    assert.deepEqual(ids(r.granted), [3, 5]);
    assert.deepEqual(ids(res.waitingLocks()), [4, 2]);
  });
});

describe('LDLM resource: inodebits locks', () => {
  test('locks on disjoint bits coexist even in incompatible modes', () => {
    const res = new LdlmResource('ibits');
    assert.equal(res.enqueue({ id: 1, owner: 'c1', mode: CR, bits: InodeBit.LOOKUP | InodeBit.UPDATE }).status, 'granted');
    assert.equal(res.enqueue({ id: 2, owner: 'mdt', mode: EX, bits: InodeBit.LAYOUT }).status, 'granted');
  });

  test("an MDT update revokes clients' cached metadata locks and waits for them", () => {
    const res = new LdlmResource('ibits');
    res.enqueue({ id: 1, owner: 'c1', mode: PR, bits: InodeBit.UPDATE | InodeBit.LOOKUP });
    res.enqueue({ id: 2, owner: 'c2', mode: CR, bits: InodeBit.LOOKUP });
    res.enqueue({ id: 3, owner: 'c3', mode: CR, bits: InodeBit.XATTR });
    const w = res.enqueue({ id: 4, owner: 'mdt', mode: EX, bits: InodeBit.UPDATE | InodeBit.LOOKUP }, { local: true });
    assert.equal(w.status, 'waiting');
    assert.deepEqual(ids(w.conflicts), [1, 2]);
    assert.deepEqual(res.cancel(1).granted, []);
    assert.deepEqual(ids(res.cancel(2).granted), [4]);
  });

  test('a later waiter on other bits is granted past a blocked one it does not conflict with', () => {
    const res = new LdlmResource('ibits');
    res.enqueue({ id: 1, owner: 'c1', mode: PR, bits: InodeBit.UPDATE | InodeBit.XATTR });
    res.enqueue({ id: 2, owner: 'c9', mode: PR, bits: InodeBit.UPDATE });
    assert.equal(res.enqueue({ id: 3, owner: 'mdt', mode: EX, bits: InodeBit.UPDATE }).status, 'waiting');
    assert.equal(res.enqueue({ id: 4, owner: 'mdt2', mode: EX, bits: InodeBit.XATTR }).status, 'waiting');
    assert.equal(res.enqueue({ id: 5, owner: 'c2', mode: CR, bits: InodeBit.UPDATE }).status, 'waiting', 'behind the EX on UPDATE');
    assert.deepEqual(ids(res.cancel(1).granted), [4], 'XATTR is free; UPDATE is still held by lock 2');
    assert.deepEqual(ids(res.cancel(2).granted), [3]);
    assert.deepEqual(ids(res.cancel(3).granted), [5]);
  });

  test('ibits resources validate bits and reject GROUP', () => {
    const res = new LdlmResource('ibits');
    assert.throws(() => res.enqueue({ id: 1, owner: 'c1', mode: PR, bits: 0 }), { code: 'LDLM_BAD_IBITS' });
    assert.throws(() => res.enqueue({ id: 2, owner: 'c1', mode: GROUP, bits: 1 }), { code: 'LDLM_BAD_MODE' });
  });
});

describe('LDLM resource: plain locks', () => {
  test('conflict is by mode alone', () => {
    const res = new LdlmResource('plain');
    assert.equal(res.enqueue({ id: 1, owner: 'c1', mode: CR }).status, 'granted');
    assert.equal(res.enqueue({ id: 2, owner: 'c2', mode: CR }).status, 'granted');
    const w = res.enqueue({ id: 3, owner: 'mgs', mode: EX });
    assert.deepEqual([w.status, ids(w.conflicts)], ['waiting', [1, 2]]);
    res.cancel(1);
    assert.deepEqual(ids(res.cancel(2).granted), [3]);
  });
});
