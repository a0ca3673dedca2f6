/**
 * Archive keys come from the FID, never the path, in Lustre's lhsmtool_posix V2 layout:
 * `<(oid ^ seq) & 0xffff as 4 hex digits>/[0xSEQ:0xOID:0xVER]`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { archiveKey, archiveKeyFid, withPrefix } from '../src/hsm/archive-key.js';

test('the key is the spread directory then the FID as lfs prints it', () => {
  assert.equal(archiveKey({ seq: 0x200000400, oid: 0x1, ver: 0 }), '0401/[0x200000400:0x1:0x0]');
  assert.equal(archiveKey({ seq: 0x200000401, oid: 0x401, ver: 0 }), '0000/[0x200000401:0x401:0x0]');
  // 64-bit XOR semantics on the low 16 bits, with sequences wider than 32 bits
  assert.equal(archiveKey({ seq: 0x2_0000_abcd, oid: 0x1234_ffff, ver: 0x2 }), '5432/[0x20000abcd:0x1234ffff:0x2]');
  assert.equal(archiveKey({ seq: 0x1f_ffff_ffff_ffff, oid: 0xffffffff, ver: 0 }), '0000/[0x1fffffffffffff:0xffffffff:0x0]');
});

test('keys spread over the 65536 directories as the OIDs of one sequence grow', () => {
  const dirs = new Set<string>();
  for (let oid = 1; oid <= 4096; oid++) dirs.add(archiveKey({ seq: 0x200000400, oid, ver: 0 }).split('/')[0]!);
  assert.equal(dirs.size, 4096);
});

test('the FID comes back from a key, with or without a prefix; foreign keys give undefined', () => {
  const fid = { seq: 0x200000bad, oid: 0x77, ver: 0 };
  assert.deepEqual(archiveKeyFid(archiveKey(fid)), fid);
  assert.deepEqual(archiveKeyFid(withPrefix('site/a', archiveKey(fid))), fid);
  for (const k of ['', 'x', '0000/[0x200000bad:0x77:0x0]', 'abcd/notafid', '0bda/[0x200000bad:0x77:0x0].sha256']) {
    assert.equal(archiveKeyFid(k), undefined, k);
  }
});

test('withPrefix joins with one slash and leaves keys alone without a prefix', () => {
  assert.equal(withPrefix('', 'a/b'), 'a/b');
  assert.equal(withPrefix('p/q', 'a/b'), 'p/q/a/b');
});
