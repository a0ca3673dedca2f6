/**
 * `stria stats` view lines: per-second rates of the counters between two snapshots
 * (memory, SSD and OSS MiB/s, readahead hits and misses per second), the current dirty
 * and grant MiB, under a two-line header whose columns line up with the values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CacheStatsSnapshot } from '../src/client/cache/types.js';
import { countArg, intervalArg, statsHeader, statsRow } from '../src/cli/cache-stats.js';

const MiB = 1 << 20;

function snapshot(n: number): CacheStatsSnapshot {
  return {
    memory: { hitBytes: 10 * MiB * n, hitRequests: 10 * n, missBytes: 2 * MiB * n, missRequests: 2 * n, cachedBytes: 8 * MiB, maxBytes: 64 * MiB, pageSize: 65536 },
    ssd: { hitBytes: 4 * MiB * n, hitRequests: 4 * n, missBytes: MiB * n, missRequests: n, enabled: true, cachedBytes: 100 * MiB, maxBytes: 1024 * MiB, errors: 0, dirs: ['/cache'] },
    oss: { readBytes: MiB * n, readRequests: n, writeBytes: 3 * MiB * n, writeRequests: 3 * n },
    dirtyBytes: 5 * MiB + MiB / 2,
    maxDirtyBytes: 32 * MiB,
    grantBytes: 16 * MiB,
    readahead: { hits: 40 * n, misses: 6 * n, readaheadBytes: MiB * n, wholeFileReads: n, stridedWindows: 0 },
  };
}

const fields = (line: string) => line.trim().split(/\s+/);

test('a row gives the rates over the interval and the current dirty and grant sizes', () => {
  assert.deepEqual(fields(statsRow(snapshot(1), snapshot(3), 2)), ['10.0', '2.0', '4.0', '1.0', '1.0', '3.0', '5.5', '16.0', '40', '6']);
  assert.deepEqual(fields(statsRow(snapshot(2), snapshot(2), 1)), ['0.0', '0.0', '0.0', '0.0', '0.0', '0.0', '5.5', '16.0', '0', '0']);
});

test('a counter that went back (a restarted cache) counts from zero instead of going negative', () => {
  const row = fields(statsRow(snapshot(5), snapshot(1), 1));
  assert.deepEqual(row.slice(0, 2), ['10.0', '2.0']);
});

test('the header has one column title per value, and every column ends where its values end', () => {
  const [top, names, extra] = statsHeader().split('\n');
  assert.equal(extra, '');
  assert.deepEqual(fields(names!), ['hit', 'miss', 'hit', 'miss', 'read', 'write', 'MiB', 'MiB', 'hits', 'misses']);
  assert.match(top!, /mem MiB\/s.*ssd MiB\/s.*oss MiB\/s.*dirty.*grant.*readahead\/s/);
  const row = statsRow(snapshot(0), snapshot(1), 1);
  assert.equal(row.length, names!.length);
  assert.equal(top!.length, names!.length);
  const ends = (s: string) => [...s.matchAll(/\S+/g)].map((m) => m.index! + m[0].length);
  assert.deepEqual(ends(row), ends(names!));
});

test('--interval takes 0.1..86400 seconds and --count a positive integer', () => {
  assert.equal(intervalArg('0.5'), 0.5);
  assert.equal(intervalArg('2'), 2);
  for (const bad of ['0', '-1', 'x', '100000']) assert.throws(() => intervalArg(bad), /--interval/, bad);
  assert.equal(countArg('3'), 3);
  for (const bad of ['0', '1.5', 'x']) assert.throws(() => countArg(bad), /--count/, bad);
});
