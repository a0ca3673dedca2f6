/** MDT inodebits locks (reference §3.6): conflict = incompatible modes AND overlapping bits. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertIbits, bitsOverlap, ibitsLocksConflict, ibitsNames, InodeBit, INODELOCK_FULL } from '../src/ldlm/inodebits.js';
import { LockMode } from '../src/ldlm/modes.js';

describe('LDLM inodebits', () => {
  test('bits are numbered as in Lustre', () => {
    assert.deepEqual(InodeBit, { LOOKUP: 0x01, UPDATE: 0x02, OPEN: 0x04, LAYOUT: 0x08, PERM: 0x10, XATTR: 0x20, DOM: 0x40 });
    assert.equal(INODELOCK_FULL, 0x7f);
    assert.equal(Object.values(InodeBit).reduce((a, b) => a | b, 0), INODELOCK_FULL);
    assert.deepEqual(ibitsNames(InodeBit.LOOKUP | InodeBit.PERM), ['LOOKUP', 'PERM']);
  });

  test('incompatible modes on overlapping bits conflict', () => {
    // The MDT's EX on UPDATE revokes a client's cached PR on UPDATE|LOOKUP.
    assert.equal(ibitsLocksConflict({ mode: LockMode.EX, bits: InodeBit.UPDATE }, { mode: LockMode.PR, bits: InodeBit.UPDATE | InodeBit.LOOKUP }), true);
    // unlink takes FULL and so conflicts with anything incompatible.
    assert.equal(ibitsLocksConflict({ mode: LockMode.EX, bits: INODELOCK_FULL }, { mode: LockMode.CR, bits: InodeBit.XATTR }), true);
  });

  test('incompatible modes on disjoint bits do not conflict', () => {
    assert.equal(ibitsLocksConflict({ mode: LockMode.EX, bits: InodeBit.LAYOUT }, { mode: LockMode.CR, bits: InodeBit.LOOKUP | InodeBit.UPDATE }), false);
    assert.equal(ibitsLocksConflict({ mode: LockMode.PW, bits: InodeBit.DOM }, { mode: LockMode.PW, bits: InodeBit.UPDATE }), false);
  });

  test('compatible modes on the same bits do not conflict', () => {
    assert.equal(ibitsLocksConflict({ mode: LockMode.CR, bits: INODELOCK_FULL }, { mode: LockMode.PR, bits: INODELOCK_FULL }), false);
    assert.equal(ibitsLocksConflict({ mode: LockMode.CW, bits: InodeBit.OPEN }, { mode: LockMode.CW, bits: InodeBit.OPEN }), false);
  });

  test('exhaustively: conflict iff the modes are incompatible and the masks intersect', () => {
    const masks = [InodeBit.LOOKUP, InodeBit.UPDATE, InodeBit.LOOKUP | InodeBit.UPDATE, InodeBit.DOM, INODELOCK_FULL];
    const modes = [LockMode.EX, LockMode.PW, LockMode.PR, LockMode.CW, LockMode.CR, LockMode.NL];
    const compatible = new Set(['1,32', '2,16', '2,32', '4,4', '4,16', '4,32', '8,8', '8,16', '8,32', '16,16', '16,32', '32,32']);
    for (const ma of modes) for (const mb of modes) for (const a of masks) for (const b of masks) {
      const modesClash = !compatible.has(`${Math.min(ma, mb)},${Math.max(ma, mb)}`);
      assert.equal(ibitsLocksConflict({ mode: ma, bits: a }, { mode: mb, bits: b }), modesClash && bitsOverlap(a, b), `${ma}/${a} vs ${mb}/${b}`);
    }
  });

  test('bit masks must be a non-empty subset of FULL', () => {
    assertIbits(InodeBit.LOOKUP);
    assertIbits(INODELOCK_FULL);
    for (const bad of [0, 0x80, -1, 1.5]) assert.throws(() => assertIbits(bad), { code: 'LDLM_BAD_IBITS' }, String(bad));
  });
});
