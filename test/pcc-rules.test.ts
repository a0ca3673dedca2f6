/**
 * The "RULE PARAMS" of `lctl pcc add` (reference §6): conditions joined by & (and) and ,
 * (or), values in braces, comparisons of size and age, and the backend parameters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { globMatch, parseBackendSpec, parseRule, ruleMatches, type RuleSubject } from '../src/client/pcc/rules.js';
import { pccCachePath } from '../src/client/pcc/cache-path.js';
import { Errno, StriaError } from '../src/common/errno.js';

const NOW = 1_700_000_000;
const base: RuleSubject = { uid: 0, gid: 0, projid: 0, name: 'f', size: 0, mtimeSec: NOW };
const subj = (s: Partial<RuleSubject>): RuleSubject => ({ ...base, ...s });

test('the reference example: (projid 500 or 1000, and *.h5) or uid 1001', () => {
  const spec = parseBackendSpec('projid={500,1000}&fname={*.h5},uid=1001 rwid=2');
  assert.equal(spec.params.rwid, 2);
  assert.equal(spec.params.roid, 0);
  const r = spec.rule!;
  assert.equal(r.text, 'projid={500,1000}&fname={*.h5},uid=1001');
  assert.equal(ruleMatches(r, subj({ projid: 500, name: 'a.h5' }), NOW), true);
  assert.equal(ruleMatches(r, subj({ projid: 1000, name: 'b.h5' }), NOW), true);
  assert.equal(ruleMatches(r, subj({ projid: 500, name: 'a.txt' }), NOW), false, 'AND: both conditions');
  assert.equal(ruleMatches(r, subj({ projid: 7, name: 'a.h5' }), NOW), false);
  assert.equal(ruleMatches(r, subj({ uid: 1001, name: 'anything' }), NOW), true, 'OR: the other alternative');
  assert.equal(ruleMatches(r, subj({ uid: 1002 }), NOW), false);
});

test('size comparisons with units, and values separated by spaces inside braces', () => {
  const r = parseRule('projid={100}&size>{1M}&size<{500G}');
  assert.equal(ruleMatches(r, subj({ projid: 100, size: 2 << 20 }), NOW), true);
  assert.equal(ruleMatches(r, subj({ projid: 100, size: 1 << 20 }), NOW), false, '> is strict');
  assert.equal(ruleMatches(r, subj({ projid: 100, size: 600 * 2 ** 30 }), NOW), false);
  const spaced = parseBackendSpec('uid={500 1000}&gid={7} roid=3');
  assert.equal(spaced.params.roid, 3);
  assert.equal(ruleMatches(spaced.rule!, subj({ uid: 1000, gid: 7 }), NOW), true);
  assert.equal(ruleMatches(spaced.rule!, subj({ uid: 1000, gid: 8 }), NOW), false);
});

test('mtime compares the file age', () => {
  const r = parseRule('mtime<{1h}');
  assert.equal(ruleMatches(r, subj({ mtimeSec: NOW - 60 }), NOW), true);
  assert.equal(ruleMatches(r, subj({ mtimeSec: NOW - 7200 }), NOW), false);
  assert.equal(ruleMatches(parseRule('mtime>{1d}'), subj({ mtimeSec: NOW - 2 * 86400 }), NOW), true);
});

test('fname globs', () => {
  assert.equal(globMatch('*.h5', 'x.h5'), true);
  assert.equal(globMatch('*.h5', 'x.h5.bak'), false);
  assert.equal(globMatch('data-??.[ch]', 'data-01.c'), true);
  assert.equal(globMatch('data-??.[!ch]', 'data-01.c'), false);
  assert.equal(globMatch('a.b', 'axb'), false, 'a dot is literal');
  const r = parseRule('fname={*.h5,*.nc}');
  assert.equal(ruleMatches(r, subj({ name: 'f.nc' }), NOW), true);
  assert.equal(ruleMatches(r, subj({ name: 'f.txt' }), NOW), false);
});

test('parameters: rwid / roid, pccro, flags, defaults', () => {
  const rw = parseBackendSpec('rwid=4');
  assert.equal(rw.rule, undefined, 'a backend without a rule attaches only on request');
  assert.deepEqual([rw.params.rwid, rw.params.roid, rw.params.autoAttach, rw.params.openAttach], [4, 0, true, true]);
  assert.equal(parseBackendSpec('rwid=4 pccro=1').params.roid, 4, 'pccro with rwid: read-only under the same id');
  assert.equal(parseBackendSpec('roid=5 open_attach=0').params.openAttach, false);
  assert.equal(parseBackendSpec('rwid=2 pccrw=0 roid=3').params.rwid, 0);
  assert.equal(parseBackendSpec('rwid=2 auto_attach').params.autoAttach, true);
});

test('bad rules and parameters are refused with EINVAL', () => {
  for (const bad of [
    'uid={1} ', // no id: neither rwid nor roid
    'uid={1 rwid=2', // unbalanced
    'color={red} rwid=2', // unknown field
    'uid<{5} rwid=2', // uid compares with = only
    'mtime={5} rwid=2',
    'size>{1M,2M} rwid=2', // one value for a comparison
    'size>{lots} rwid=2',
    'uid={1}&&gid={2} rwid=2',
    'fname={a/b} rwid=2',
    'uid={1} gid={2} rwid=2', // two rules
    'rwid=0',
    'rwid=2 rwid=3',
    'rwid=2 auto_attach=maybe',
  ]) {
    assert.throws(() => parseBackendSpec(bad), (e: unknown) => e instanceof StriaError && e.errno === Errno.EINVAL, bad);
  }
});

test('the copy path uses the lhsmtool_posix V1 layout', () => {
  assert.equal(pccCachePath({ seq: 0x200000bd1, oid: 0x4, ver: 0 }), '/0004/0000/0bd1/0000/0002/0000/0x200000bd1:0x4:0x0');
  assert.equal(pccCachePath({ seq: 0x200000401, oid: 0x12345, ver: 0 }), '/2345/0001/0401/0000/0002/0000/0x200000401:0x12345:0x0');
});
