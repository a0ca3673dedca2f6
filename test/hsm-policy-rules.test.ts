/** Rule evaluation: globs on paths, size and pool bounds, ages, first match wins, "never until it changes". */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileGlob } from '../src/hsm/policy/glob.js';
import { parsePolicyConfigText } from '../src/hsm/policy/config.js';
import { firstMatch, matches, needsPath, type RuleFacts } from '../src/hsm/policy/rules.js';

test('path globs: * stays in a component, ** crosses them, relative globs match at any depth', () => {
  const g = (p: string) => compileGlob(p);
  assert.ok(g('/proj/**').test('/proj/a/b/c'));
  assert.ok(g('/proj/**').test('/proj/x'));
  assert.ok(!g('/proj/**').test('/projx/a'));
  assert.ok(g('/a/*/c').test('/a/b/c'));
  assert.ok(!g('/a/*/c').test('/a/b/b/c'));
  assert.ok(g('/a/**/c').test('/a/c'), '**/ may match no directory');
  assert.ok(g('/a/**/c').test('/a/x/y/c'));
  assert.ok(g('*.tmp').test('/deep/down/x.tmp'));
  assert.ok(g('*.tmp').test('/x.tmp'));
  assert.ok(!g('*.tmp').test('/x.tmpl'));
  assert.ok(g('/d/file[0-9].dat').test('/d/file7.dat'));
  assert.ok(!g('/d/file[!0-9].dat').test('/d/file7.dat'));
  assert.ok(g('/d/file[!0-9].dat').test('/d/fileX.dat'));
  assert.ok(g('/d/?.c').test('/d/a.c'));
  assert.ok(!g('/d/?.c').test('/d/ab.c'));
  assert.ok(!g('/d?x').test('/d/x'), '? never matches /');
  assert.ok(g('/weird (1)+$.txt').test('/weird (1)+$.txt'), 'regexp characters are literal');
});

const cfg = parsePolicyConfigText(`
archive:
  rules:
    - name: flash-logs
      pool: flash
      file_name: "*.log"
      older_than: 10m
      archive_id: 2
    - name: big
      min_size: 1M
      max_size: 1G
      exclude: /tmp/**
      older_than: 1h
    - name: any-old
      older_than: 7d
`);
const rules = cfg.archive!.rules;
const H = 3600_000;
const now = 1_000 * H;
const facts = (f: Partial<RuleFacts>): RuleFacts => ({ size: 0, mtime: now, atime: now, ...f });

test('conditions: size range, pool, file name, exclusions and ages all must hold', () => {
  const big = rules[1]!;
  assert.ok(matches(big, facts({ size: 2 << 20, mtime: now - 2 * H, path: '/data/x' }), now));
  assert.ok(!matches(big, facts({ size: 2 << 20, mtime: now - 0.5 * H, path: '/data/x' }), now), 'too recent');
  assert.ok(!matches(big, facts({ size: 100, mtime: now - 2 * H, path: '/data/x' }), now), 'too small');
  assert.ok(!matches(big, facts({ size: 2 ** 31, mtime: now - 2 * H, path: '/data/x' }), now), 'too big');
  assert.ok(!matches(big, facts({ size: 2 << 20, mtime: now - 2 * H, path: '/tmp/x' }), now), 'excluded');
  assert.ok(!matches(big, facts({ size: 2 << 20, mtime: now - 2 * H }), now), 'a rule about paths needs the path');
  assert.ok(needsPath(big));
  assert.ok(!needsPath(rules[2]!));
  const logs = rules[0]!;
  assert.ok(matches(logs, facts({ pool: 'flash', path: '/a/b.log', mtime: now - H }), now));
  assert.ok(!matches(logs, facts({ pool: 'disk', path: '/a/b.log', mtime: now - H }), now));
  assert.ok(!matches(logs, facts({ pool: 'flash', path: '/a/b.txt', mtime: now - H }), now));
  const rel = parsePolicyConfigText('release: {high_watermark: 90, low_watermark: 80, rules: [{unused_for: 1d}]}').release!.rules[0]!;
  assert.ok(matches(rel, facts({ atime: now - 25 * H }), now));
  assert.ok(!matches(rel, facts({ atime: now - 23 * H, mtime: 0 }), now), 'access time, not modification time');
});

test('the first matching rule decides; "never" only when no rule could match before the file changes', () => {
  const v1 = firstMatch(rules, facts({ pool: 'flash', path: '/x/y.log', size: 5 << 20, mtime: now - 2 * H }), now);
  assert.equal(v1.rule?.name, 'flash-logs');
  assert.equal(v1.rule?.archiveId, 2);
  const v2 = firstMatch(rules, facts({ path: '/x/y.bin', size: 5 << 20, mtime: now - 2 * H }), now);
  assert.equal(v2.rule?.name, 'big');
  const young = firstMatch(rules, facts({ path: '/x/y.bin', size: 5 << 20, mtime: now - 60_000 }), now);
  assert.deepEqual(young, { rule: undefined, never: false }, 'it may match once older');
  const onlyAge = firstMatch([rules[1]!], facts({ path: '/tmp/y.bin', size: 5 << 20, mtime: now - 60_000 }), now);
  assert.deepEqual(onlyAge, { rule: undefined, never: true }, 'excluded whatever its age');
});
