/** Policy configuration: YAML and JSON read alike; every mistake is EINVAL naming the key at fault. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicyConfig, parsePolicyConfigText, DEFAULT_CYCLE_MS } from '../src/hsm/policy/config.js';
import type { StriaError } from '../src/common/errno.js';

const dir = mkdtempSync(join(tmpdir(), 'stria-policy-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const EXAMPLE = `
cycle: 2m
archive_id: 3
batch: 16
archive:
  retry_after: 10m
  rules:
    - name: big-old
      older_than: 30m
      min_size: 1M
      path: [/projects/**, /scratch/keep/**]
      exclude: "*.tmp"
      archive_id: 2
    - name: rest
      older_than: 1d
release:
  high_watermark: 85%
  low_watermark: 80
  osts: [0, 2]
  rules:
    - { name: big, min_size: 1G, unused_for: 1d }
    - { name: small, unused_for: 1y, file_name: "*.dat", pool: flash }
remove:
  after: 30d
`;

test('a full configuration reads into rules with units resolved', () => {
  const c = parsePolicyConfigText(EXAMPLE);
  assert.equal(c.cycleMs, 120_000);
  assert.equal(c.archiveId, 3);
  assert.equal(c.batch, 16);
  assert.equal(c.archive!.retryAfterMs, 600_000);
  const [bigOld, rest] = c.archive!.rules;
  assert.equal(bigOld!.name, 'big-old');
  assert.equal(bigOld!.olderThanMs, 1_800_000);
  assert.equal(bigOld!.minSize, 1 << 20);
  assert.equal(bigOld!.archiveId, 2);
  assert.deepEqual(bigOld!.path!.map((g) => g.source), ['/projects/**', '/scratch/keep/**']);
  assert.equal(rest!.archiveId, 3, 'a rule without archive_id takes the default');
  assert.equal(rest!.olderThanMs, 86_400_000);
  assert.deepEqual([c.release!.high, c.release!.low, c.release!.osts], [85, 80, [0, 2]]);
  assert.equal(c.release!.rules[0]!.minSize, 2 ** 30);
  assert.equal(c.release!.rules[1]!.unusedForMs, 365 * 86_400_000);
  assert.equal(c.release!.rules[1]!.pool, 'flash');
  assert.equal(c.remove!.afterMs, 30 * 86_400_000);
});

test('JSON is accepted, and an empty file means defaults with nothing to do', () => {
  const c = parsePolicyConfigText(JSON.stringify({ cycle: 30, release: { high_watermark: 90, low_watermark: '70%' } }));
  assert.equal(c.cycleMs, 30_000);
  assert.deepEqual([c.release!.high, c.release!.low, c.release!.rules], [90, 70, []]);
  const empty = parsePolicyConfigText('');
  assert.equal(empty.cycleMs, DEFAULT_CYCLE_MS);
  assert.equal(empty.archive, undefined);
  assert.equal(empty.release, undefined);
  assert.equal(empty.remove, undefined);
});

test('mistakes are EINVAL and name the offending key', () => {
  const cases: Array<[string, RegExp]> = [
    ['cycle: 5x', /^cycle: "5x" is not a duration/],
    ['colour: blue', /^colour: unknown key/],
    ['archive:\n  rules:\n    - older: 1d', /^archive\.rules\[0\]\.older: unknown key/],
    ['archive:\n  rules:\n    - older_than: soon', /^archive\.rules\[0\]\.older_than: /],
    ['archive: {}', /^archive\.rules: is missing/],
    ['archive:\n  rules: {a: 1}', /^archive\.rules: must be a list/],
    ['archive:\n  rules:\n    - min_size: 2M\n      max_size: 1M', /^archive\.rules\[0\]\.min_size: is larger than max_size/],
    ['archive:\n  rules:\n    - path: "/a/[bc"', /^archive\.rules\[0\]\.path: .*unclosed/],
    ['archive:\n  rules:\n    - archive_id: 0', /^archive\.rules\[0\]\.archive_id: 0 must be an integer/],
    ['release:\n  high_watermark: 80%\n  low_watermark: 85%', /^release\.low_watermark: 85% must be below release\.high_watermark/],
    ['release:\n  high_watermark: 180%\n  low_watermark: 85%', /^release\.high_watermark: "180%" is not a percentage/],
    ['release:\n  low_watermark: 85%', /^release\.high_watermark: is missing/],
    ['release:\n  high_watermark: 90\n  low_watermark: 80\n  osts: [a]', /^release\.osts\[0\]: /],
    ['remove: {}', /^remove\.after: is missing/],
    ['batch: 0', /^batch: 0 must be an integer 1\.\.1024/],
    ['release: [1', /not valid YAML or JSON/],
  ];
  for (const [text, want] of cases) {
    assert.throws(() => parsePolicyConfigText(text), (e: unknown) => {
      const se = e as StriaError;
      assert.equal(se.code, 'BAD_POLICY_CONFIG', text);
      assert.equal(se.errno, 22, text);
      assert.match(se.message, want, text);
      return true;
    });
  }
});

test('a config file is read from disk; its errors name the file', async () => {
  const ok = join(dir, 'ok.yaml');
  writeFileSync(ok, EXAMPLE);
  assert.equal((await loadPolicyConfig(ok)).cycleMs, 120_000);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'remove:\n  after: whenever\n');
  await assert.rejects(loadPolicyConfig(bad), (e: unknown) => (e as Error).message === `policy config ${bad}: remove.after: "whenever" is not a duration (examples: 30s, 10m, 2h, 7d, 1y)`);
  await assert.rejects(loadPolicyConfig(join(dir, 'missing.yaml')), (e: unknown) => (e as StriaError).code === 'BAD_POLICY_CONFIG' && (e as StriaError).errno === 2);
});
