/**
 * Dense-random readahead (FileReadahead): random reads of a file small enough to stay
 * cached that miss twice inside one RPC-sized chunk plan the rest of that chunk, once, in
 * DENSE_PIECE_BYTES pieces; hits, large files, files of unknown size and a turned-off
 * readahead plan nothing, and sequential reads keep their own windows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from './helpers/prng.js';
import { DENSE_PIECE_BYTES, FileReadahead, type ReadaheadLimits, type ReadaheadPlan } from '../src/client/cache/readahead.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 4 * MiB;

function limits(l: Partial<ReadaheadLimits> = {}): () => ReadaheadLimits {
  const value: ReadaheadLimits = { rpcBytes: CHUNK, maxPerFileBytes: 16 * MiB, maxWholeBytes: 2 * MiB, denseMaxFileBytes: 128 * MiB, ...l };
  return () => value;
}

const UNKNOWN = Number.MAX_SAFE_INTEGER;

test('the second miss in a chunk plans the rest of that chunk in pieces, around the read', () => {
  const ra = new FileReadahead(limits());
  const size = 64 * MiB;
  assert.deepEqual(ra.onRead(9 * MiB, 4 * KiB, UNKNOWN, { fileSize: size }), [], 'one miss in chunk 2 is not dense yet');
  assert.deepEqual(ra.onRead(30 * MiB, 4 * KiB, UNKNOWN, { fileSize: size }), [], 'one miss in chunk 7 either');
  const at = 10 * MiB + 8 * KiB;
  const plans = ra.onRead(at, 4 * KiB, UNKNOWN, { fileSize: size });
  assert.ok(plans.every((p) => p.kind === 'dense'));
  assert.ok(plans.every((p) => p.length <= DENSE_PIECE_BYTES));
  const covered = plans.reduce((n, p) => n + p.length, 0);
  assert.equal(covered, CHUNK - 4 * KiB, 'all of chunk 2 but the bytes the read takes');
  const sorted = [...plans].sort((a, b) => a.start - b.start);
  assert.equal(sorted[0]!.start, 8 * MiB);
  assert.equal(sorted.at(-1)!.start + sorted.at(-1)!.length, 12 * MiB);
  for (const p of sorted) assert.ok(p.start + p.length <= at || p.start >= at + 4 * KiB, `plan ${JSON.stringify(p)} overlaps the read`);
  assert.equal(ra.stats.denseChunks, 1);

  assert.deepEqual(ra.onRead(11 * MiB, 4 * KiB, UNKNOWN, { fileSize: size }), [], 'a chunk is planned once');
});

test('hits do not count, and the last chunk stops at the end of the file', () => {
  const ra = new FileReadahead(limits());
  const size = 10 * MiB;
  assert.deepEqual(ra.onRead(9 * MiB, 4 * KiB, UNKNOWN, { fileSize: size }), []);
  assert.deepEqual(ra.onRead(3 * MiB, 4 * KiB, UNKNOWN), [], 'a hit elsewhere');
  assert.deepEqual(ra.onRead(8 * MiB + 100 * KiB, 4 * KiB, UNKNOWN), [], 'a hit in the same chunk plans nothing');
  const plans = ra.onRead(8 * MiB + 200 * KiB, 4 * KiB, UNKNOWN, { fileSize: size });
  assert.ok(plans.length > 0, 'the second miss does');
  const end = Math.max(...plans.map((p) => p.start + p.length));
  assert.equal(end, size, 'nothing past the end of the file');
});

test('files above the limit, of unknown size, or with readahead off get nothing', () => {
  const cases: Array<[string, FileReadahead, number | undefined]> = [
    ['larger than denseMaxFileBytes', new FileReadahead(limits({ denseMaxFileBytes: 32 * MiB })), 64 * MiB],
    ['size unknown', new FileReadahead(limits()), undefined],
    ['no dense limit given', new FileReadahead(limits({ denseMaxFileBytes: undefined })), 64 * MiB],
    ['max_read_ahead_per_file_mb=0', new FileReadahead(limits({ maxPerFileBytes: 0 })), 64 * MiB],
  ];
  for (const [what, ra, fileSize] of cases) {
    const rnd = mulberry32(3);
    const all: ReadaheadPlan[] = [];
    for (let i = 0; i < 200; i++) all.push(...ra.onRead(Math.floor(rnd() * 16384) * 4 * KiB, 4 * KiB, UNKNOWN, { fileSize }));
    assert.deepEqual(all.filter((p) => p.kind === 'dense'), [], what);
  }
});

test('sequential reads that miss keep sequential windows, with no dense plans', () => {
  const ra = new FileReadahead(limits());
  const kinds = new Set<string>();
  for (let off = 0, i = 0; off < 32 * MiB && i < 1000; off += 128 * KiB, i++) {
    for (const p of ra.onRead(off, 128 * KiB, UNKNOWN, { fileSize: 64 * MiB })) kinds.add(p.kind);
  }
  assert.deepEqual([...kinds], ['sequential']);
});
