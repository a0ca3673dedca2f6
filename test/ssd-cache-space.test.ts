import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, statfs, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SsdCache } from '../src/client/cache/ssd-cache.js';

const KiB = 1024;
const block = (seed: number): Buffer => Buffer.alloc(64 * KiB, seed);

let base = '';
const mounts: string[] = [];

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'stria-ssd-space-'));
});

after(async () => {
  for (const m of mounts) {
    try {
      execFileSync('umount', [m]);
    } catch {
      // already gone
    }
  }
  await rm(base, { recursive: true, force: true });
});

/** an 8 MiB tmpfs, or undefined when this machine cannot mount one */
async function smallFs(name: string): Promise<string | undefined> {
  const dir = join(base, name);
  await mkdir(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  mounts.push(dir);
  return dir;
}

test('freeSpaceRatio: the cache evicts to keep that share of its filesystem free', async (t) => {
  const fsDir = await smallFs('ratio');
  if (!fsDir) return t.skip('cannot mount tmpfs');
  const ratio = 0.5;
  const c = await SsdCache.open({ dirs: [join(fsDir, 'cache')], maxBytes: 1 << 30, freeSpaceRatio: ratio });
  for (let i = 0; i < 120; i++) {
    c.put(`1:0x1:${i}/v/0`, block(i));
    if (i % 8 === 7) await c.flush();
  }
  await c.flush();
  const s = await statfs(fsDir);
  assert.ok(s.bavail * s.bsize >= ratio * s.blocks * s.bsize, `free ${s.bavail * s.bsize} of ${s.blocks * s.bsize}`);
  const st = c.stats();
  assert.ok(st.blocks > 10, `only ${st.blocks} blocks kept`);
  assert.ok(st.cachedBytes < 4 * 1024 * KiB);
  assert.equal(c.has('1:0x1:119/v/0'), true);
  assert.equal(st.enabled, true);
  await c.close();
});

test('freeSpaceRatio: a filesystem filled by others stops caching there, without errors', async (t) => {
  const fsDir = await smallFs('filled');
  if (!fsDir) return t.skip('cannot mount tmpfs');
  const c = await SsdCache.open({ dirs: [join(fsDir, 'cache')], maxBytes: 1 << 30, freeSpaceRatio: 0.2 });
  c.put('1:0x1:0/v/0', block(0));
  await c.flush();
  assert.equal(c.stats().blocks, 1);
  await c.close();
  await writeFile(join(fsDir, 'filler'), Buffer.alloc(7 * 1024 * KiB));
  const c2 = await SsdCache.open({ dirs: [join(fsDir, 'cache')], maxBytes: 1 << 30, freeSpaceRatio: 0.2 });
  // opening below the floor evicts what we held there
  assert.equal(c2.stats().blocks, 0);
  for (let i = 1; i < 10; i++) c2.put(`1:0x1:${i}/v/0`, block(i));
  await c2.flush();
  assert.equal(c2.stats().blocks, 0);
  assert.equal(c2.stats().writesDropped, 9);
  assert.equal(c2.enabled, true);
  await c2.close();
});

test('a cache dir replaced by a file is disabled; the other dir carries on; all gone means disabled, never a throw', async () => {
  const a = join(base, 'fail-a');
  const b = join(base, 'fail-b');
  const c = await SsdCache.open({ dirs: [a, b], maxBytes: 1 << 26, freeSpaceRatio: 0 });
  for (let i = 0; i < 20; i++) c.put(`1:0x1:${i}/v/0`, block(i));
  await c.flush();
  assert.equal(c.stats().blocks, 20);
  await rm(a, { recursive: true, force: true });
  await writeFile(a, 'not a dir');
  for (let i = 0; i < 20; i++) await c.get(`1:0x1:${i}/v/0`);
  for (let i = 20; i < 40; i++) c.put(`1:0x1:${i}/v/0`, block(i));
  await c.flush();
  let s = c.stats();
  assert.equal(s.enabled, true);
  assert.deepEqual(s.dirs, [b]);
  assert.ok(s.errors > 0);
  assert.ok(s.blocks > 0);
  for (let i = 0; i < 40; i++) {
    const got = await c.get(`1:0x1:${i}/v/0`);
    if (got) assert.deepEqual(got, block(i));
  }
  await rm(b, { recursive: true, force: true });
  for (let i = 0; i < 40; i++) await c.get(`1:0x1:${i}/v/0`);
  for (let i = 40; i < 50; i++) c.put(`1:0x1:${i}/v/0`, block(i));
  await c.flush();
  s = c.stats();
  assert.equal(c.enabled, false);
  assert.equal(s.enabled, false);
  assert.equal(s.blocks, 0);
  assert.equal(await c.get('1:0x1:45/v/0'), undefined);
  c.put('1:0x1:99/v/0', block(1));
  assert.equal(c.has('1:0x1:99/v/0'), false);
  await c.close();
});

test('a cache disk that fills up (ENOSPC) counts errors, is treated as full, and the other dir takes the blocks', async (t) => {
  const fsDir = await smallFs('enospc');
  if (!fsDir) return t.skip('cannot mount tmpfs');
  const other = join(base, 'enospc-other');
  // ratio 0 and a stale free-space estimate: only the disk itself can say no
  const c = await SsdCache.open({ dirs: [join(fsDir, 'cache'), other], maxBytes: 1 << 30, freeSpaceRatio: 0 });
  await writeFile(join(fsDir, 'filler'), Buffer.alloc(8 * 1024 * KiB)).catch(() => undefined);
  for (let i = 0; i < 60; i++) c.put(`1:0x1:${i}/v/0`, block(i));
  await c.flush();
  const s = c.stats();
  assert.equal(s.enabled, true);
  assert.ok(s.errors >= 1, `errors ${s.errors}`);
  assert.ok(s.blocks >= 30, `blocks ${s.blocks}`);
  for (let i = 0; i < 60; i++) {
    const got = await c.get(`1:0x1:${i}/v/0`);
    if (got) assert.deepEqual(got, block(i));
  }
  await c.close();
});
