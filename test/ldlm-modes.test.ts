/** LDLM lock modes and Lustre's compatibility matrix (reference §3.1). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ALL_LOCK_MODES, isLockMode, LockMode, type LockModeName, lockModeName, modesCompatible } from '../src/ldlm/modes.js';

// The reference table, row by row: ✔ = compatible (GROUP×GROUP is mode-compatible; gids decide in extent.ts).
const ORDER: LockModeName[] = ['EX', 'PW', 'PR', 'CW', 'CR', 'NL', 'GROUP'];
const TABLE: Record<LockModeName, string> = {
  EX: '-----✔-',
  PW: '----✔✔-',
  PR: '--✔-✔✔-',
  CW: '---✔✔✔-',
  CR: '-✔✔✔✔✔-',
  NL: '✔✔✔✔✔✔✔',
  GROUP: '-----✔✔',
};

describe('LDLM lock modes', () => {
  test('mode values are the wire values', () => {
    assert.deepEqual(LockMode, { EX: 1, PW: 2, PR: 4, CW: 8, CR: 16, NL: 32, GROUP: 64 });
    assert.deepEqual([...ALL_LOCK_MODES].sort((a, b) => a - b), [1, 2, 4, 8, 16, 32, 64]);
    for (const name of ORDER) assert.equal(lockModeName(LockMode[name]), name);
  });

  test('every pair follows the compatibility matrix', () => {
    for (const row of ORDER) {
      const cells = [...TABLE[row]];
      ORDER.forEach((col, i) => {
        assert.equal(modesCompatible(LockMode[row], LockMode[col]), cells[i] === '✔', `${row} vs ${col}`);
      });
    }
  });

  test('the matrix is symmetric', () => {
    for (const a of ALL_LOCK_MODES) for (const b of ALL_LOCK_MODES) assert.equal(modesCompatible(a, b), modesCompatible(b, a));
  });

  test('the modes used for I/O behave as Lustre relies on', () => {
    assert.equal(modesCompatible(LockMode.PR, LockMode.PR), true, 'readers share');
    assert.equal(modesCompatible(LockMode.PW, LockMode.PR), false, 'a writer revokes readers');
    assert.equal(modesCompatible(LockMode.PW, LockMode.PW), false, 'writers exclude each other');
    assert.equal(modesCompatible(LockMode.EX, LockMode.CR), false, 'MDT EX revokes cached CR');
  });

  test('non-modes are rejected', () => {
    assert.equal(isLockMode(3), false);
    assert.equal(isLockMode(128), false);
    assert.equal(isLockMode('PR'), false);
    assert.throws(() => lockModeName(3 as LockMode), { code: 'LDLM_BAD_MODE' });
    assert.throws(() => modesCompatible(LockMode.PR, 0 as LockMode), { code: 'LDLM_BAD_MODE' });
  });
});
