/**
 * `stria warmup`'s closing lines and JSON, and its option parsing: the summary states
 * files, bytes, time and rate (warmup), the cached share (--check) or what was dropped
 * (--evict), and the failures; -p takes 1..1024 and --check excludes --evict.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { addWarmupCommand, cachedPercent, formatBytes, formatSummary, parallelArg, totalsJson, type WarmupTotals } from '../src/cli/warmup.js';

const MiB = 1 << 20;
const KiB = 1024;

test('sizes are shown in the largest binary unit that keeps them at 1 or more, with one decimal', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(64 * KiB), '64.0 KiB');
  assert.equal(formatBytes(5000 * 64 * KiB), '312.5 MiB');
  assert.equal(formatBytes(3 * 1024 * MiB), '3.0 GiB');
});

test('warmup summary: files, bytes loaded, seconds and rate; already cached bytes and failures when there are some', () => {
  const t: WarmupTotals = { mode: 'warmup', files: 5000, failed: 0, sizeBytes: 5000 * 64 * KiB, bytes: 5000 * 64 * KiB, seconds: 12.3 };
  assert.equal(formatSummary(t), 'warmup: 5000 files, 312.5 MiB loaded into the cache in 12.3 s (25.4 MiB/s)');
  assert.equal(
    formatSummary({ ...t, files: 1, sizeBytes: 2 * MiB, bytes: MiB, seconds: 2, failed: 3 }),
    'warmup: 1 file, 1.0 MiB loaded into the cache in 2.0 s (512.0 KiB/s); 1.0 MiB was already cached, 3 failed',
  );
});

test('check summary: cached bytes over the files\' bytes in one unit, and the percentage', () => {
  const t: WarmupTotals = { mode: 'check', files: 5000, failed: 0, sizeBytes: 5000 * 64 * KiB, bytes: 5000 * 64 * KiB, seconds: 1 };
  assert.equal(formatSummary(t), 'cached: 5000 files, 312.5/312.5 MiB (100.0%)');
  assert.equal(formatSummary({ ...t, bytes: 0 }), 'cached: 5000 files, 0.0/312.5 MiB (0.0%)');
  assert.equal(formatSummary({ ...t, files: 2, sizeBytes: 3 * MiB, bytes: MiB, failed: 1 }), 'cached: 2 files, 1.0/3.0 MiB (33.3%), 1 failed');
  assert.equal(cachedPercent({ ...t, files: 1, sizeBytes: 0, bytes: 0 }), 100, 'of an empty file, all is cached');
});

test('evict summary: what was dropped', () => {
  const t: WarmupTotals = { mode: 'evict', files: 10, failed: 0, sizeBytes: 10 * MiB, bytes: 10 * MiB, seconds: 0.5 };
  assert.equal(formatSummary(t), 'evict: 10 files, 10.0 MiB dropped from the cache');
});

test('--json names the bytes after the mode and gives the cached percentage for --check', () => {
  const base = { files: 2, failed: 1, sizeBytes: 4 * MiB, seconds: 1.23456 };
  assert.deepEqual(totalsJson({ ...base, mode: 'warmup', bytes: 4 * MiB }), { mode: 'warmup', files: 2, failed: 1, sizeBytes: 4 * MiB, loadedBytes: 4 * MiB, seconds: 1.235 });
  assert.deepEqual(totalsJson({ ...base, mode: 'check', bytes: MiB }), { mode: 'check', files: 2, failed: 1, sizeBytes: 4 * MiB, cachedBytes: MiB, cachedPercent: 25, seconds: 1.235 });
  assert.deepEqual(totalsJson({ ...base, mode: 'evict', bytes: 0 }), { mode: 'evict', files: 2, failed: 1, sizeBytes: 4 * MiB, droppedBytes: 0, seconds: 1.235 });
});

test('-p takes an integer 1..1024', () => {
  assert.equal(parallelArg('1'), 1);
  assert.equal(parallelArg('16'), 16);
  for (const bad of ['0', '-1', '1.5', 'x', '1025', '']) assert.throws(() => parallelArg(bad), /-p must be an integer 1\.\.1024/, bad);
});

test('the command line: default parallelism 4, --check and --evict exclude each other', async () => {
  const seen: unknown[] = [];
  const parse = async (...args: string[]) => {
    const program = new Command('stria').exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    addWarmupCommand(program);
    // keep the parsing, replace the work: record what the action would get
    program.commands[0]!.action((paths: string[], o: unknown) => void seen.push({ paths, o }));
    await program.parseAsync(['node', 'stria', 'warmup', ...args]);
  };
  await parse('a', 'b');
  assert.deepEqual(seen.pop(), { paths: ['a', 'b'], o: { parallel: 4 } });
  await parse('-p', '8', '--check', '--json', 'a');
  assert.deepEqual(seen.pop(), { paths: ['a'], o: { parallel: 8, check: true, json: true } });
  await assert.rejects(parse('--check', '--evict', 'a'), /cannot be used with option/);
  await assert.rejects(parse('-p', '0', 'a'), /-p must be an integer/);
  await assert.rejects(parse(), /missing required argument/);
});
