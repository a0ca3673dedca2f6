/**
 * Cold runs where /proc/sys is read-only (a container): every file below the work
 * directory leaves the page cache on its own, and its bytes stay as they were.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropFileCaches, dropKernelCaches } from '../src/bench/caches.js';

/** Pages of the file in the page cache, as fincore(1) counts them. */
function residentPages(file: string): number {
  const out = JSON.parse(execFileSync('fincore', ['--json', '--bytes', '--output', 'PAGES', file], { encoding: 'utf8' })) as { fincore: Array<{ pages: number | string }> };
  return Number(out.fincore[0]!.pages);
}

test('files below the directory leave the page cache when drop_caches cannot be written', async (t) => {
  // tmpfs keeps its pages whatever fadvise says: this needs a disk-backed directory
  const dir = mkdtempSync(join(process.env.STRIA_BENCH_DISK_DIR ?? '/var/tmp', 'stria-cold-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'sub'));
  const files = [join(dir, 'a'), join(dir, 'sub', 'b')];
  const data = Buffer.alloc(2 * 1024 * 1024, 0x5a);
  for (const f of files) {
    writeFileSync(f, data);
    readFileSync(f);
  }
  for (const f of files) assert.ok(residentPages(f) > 0, `${f} is cached after it was written and read`);
  // a read-only filesystem stands for the read-only /proc/sys of a container
  const ro = mkdtempSync(join(tmpdir(), 'stria-ro-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro]);
  t.after(() => {
    execFileSync('umount', [ro]);
    rmSync(ro, { recursive: true, force: true });
  });
  assert.equal(await dropKernelCaches(dir, join(ro, 'drop_caches')), 'per-file');
  for (const f of files) assert.equal(residentPages(f), 0, `${f} left the page cache`);
  for (const f of files) assert.deepEqual(readFileSync(f), data);
  assert.equal(await dropFileCaches(dir), 2);
});
