import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readFile, writeFile, truncate, readdir, unlink, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SsdCache } from '../src/client/cache/ssd-cache.js';
import { blockRelPath, keyHash } from '../src/client/cache/ssd-block-file.js';
import { INDEX_FILE } from '../src/client/cache/ssd-index.js';

const KiB = 1024;

function block(seed: number, size = 64 * KiB): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((seed * 2654435761 + i * 40503) >>> 0, i);
  return b;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'stria-ssd-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function blockPath(dir: string, key: string): string {
  return join(dir, blockRelPath(keyHash(key)).file);
}

test('put then get returns the same bytes, from the queue and from disk', async () => {
  await withDir(async (dir) => {
    const c = await SsdCache.open({ dirs: [join(dir, 'c')], maxBytes: 64 * 1024 * KiB, freeSpaceRatio: 0 });
    const data = block(1);
    c.put('3:0x2000:17/v1/0', data);
    assert.equal(c.has('3:0x2000:17/v1/0'), true);
    const early = await c.get('3:0x2000:17/v1/0');
    assert.ok(early === undefined || early.equals(data));
    await c.flush();
    assert.deepEqual(await c.get('3:0x2000:17/v1/0'), data);
    assert.equal(await c.get('3:0x2000:17/v1/1'), undefined);
    assert.equal(c.stats().blocks, 1);
    assert.equal(c.stats().cachedBytes, data.length);
    await stat(blockPath(join(dir, 'c'), '3:0x2000:17/v1/0'));
    await c.close();
  });
});

test('a put is a copy: reusing the caller buffer does not change the cached block', async () => {
  await withDir(async (dir) => {
    const c = await SsdCache.open({ dirs: [dir], maxBytes: 1 << 24, freeSpaceRatio: 0 });
    const data = block(2);
    const expect = Buffer.from(data);
    c.put('1:0x1:1/a/0', data);
    data.fill(0);
    await c.flush();
    assert.deepEqual(await c.get('1:0x1:1/a/0'), expect);
    await c.close();
  });
});

test('a corrupted block file is a miss and is removed', async () => {
  await withDir(async (dir) => {
    const c = await SsdCache.open({ dirs: [dir], maxBytes: 1 << 24, freeSpaceRatio: 0 });
    c.put('1:0x1:1/a/0', block(3));
    await c.flush();
    const path = blockPath(dir, '1:0x1:1/a/0');
    const raw = await readFile(path);
    raw[raw.length - 100] ^= 0xff;
    await writeFile(path, raw);
    assert.equal(await c.get('1:0x1:1/a/0'), undefined);
    assert.equal(c.has('1:0x1:1/a/0'), false);
    assert.equal(c.stats().blocks, 0);
    await c.flush();
    await c.close();
    await assert.rejects(stat(path), { code: 'ENOENT' });
  });
});

test('blocks survive close and reopen (index file), in LRU order', async () => {
  await withDir(async (dir) => {
    const opts = { dirs: [join(dir, 'a'), join(dir, 'b')], maxBytes: 10 * 64 * KiB, freeSpaceRatio: 0 };
    let c = await SsdCache.open(opts);
    for (let i = 0; i < 10; i++) c.put(`1:0x1:${i}/v/0`, block(i));
    await c.flush();
    await c.get('1:0x1:0/v/0'); // most recently used now
    await c.close();
    c = await SsdCache.open(opts);
    assert.equal(c.stats().blocks, 10);
    for (let i = 0; i < 10; i++) assert.deepEqual(await c.get(`1:0x1:${i}/v/0`), block(i), `block ${i}`);
    await c.close();
    c = await SsdCache.open(opts);
    await c.get('1:0x1:0/v/0');
    // one more block must evict the least recently used one, not block 0
    c.put('1:0x1:99/v/0', block(99));
    await c.flush();
    assert.equal(c.stats().blocks, 10);
    assert.equal(c.has('1:0x1:0/v/0'), true);
    assert.equal(c.has('1:0x1:99/v/0'), true);
    await c.close();
  });
});

test('without an index (crash), reopen scans: whole blocks kept, truncated and temp files not served', async () => {
  await withDir(async (dir) => {
    const opts = { dirs: [dir], maxBytes: 1 << 24, freeSpaceRatio: 0 };
    let c = await SsdCache.open(opts);
    for (let i = 0; i < 5; i++) c.put(`2:0x5:${i}/v/0`, block(i));
    await c.flush();
    await c.close();
    await unlink(join(dir, INDEX_FILE));
    const cut = blockPath(dir, '2:0x5:3/v/0');
    await truncate(cut, 1000);
    const leftover = `${blockPath(dir, '2:0x5:1/v/0')}.tmp.1234.1`;
    await writeFile(leftover, block(9));
    c = await SsdCache.open(opts);
    assert.equal(c.stats().blocks, 4);
    assert.equal(c.has('2:0x5:3/v/0'), false);
    assert.equal(await c.get('2:0x5:3/v/0'), undefined);
    for (const i of [0, 1, 2, 4]) assert.deepEqual(await c.get(`2:0x5:${i}/v/0`), block(i));
    await assert.rejects(stat(cut), { code: 'ENOENT' });
    await assert.rejects(stat(leftover), { code: 'ENOENT' });
    await c.close();
  });
});

test('a block truncated behind a clean index is a miss', async () => {
  await withDir(async (dir) => {
    const opts = { dirs: [dir], maxBytes: 1 << 24, freeSpaceRatio: 0 };
    let c = await SsdCache.open(opts);
    c.put('2:0x5:1/v/0', block(1));
    await c.flush();
    await c.close();
    await truncate(blockPath(dir, '2:0x5:1/v/0'), 5000);
    c = await SsdCache.open(opts);
    assert.equal(await c.get('2:0x5:1/v/0'), undefined);
    assert.equal(c.stats().blocks, 0);
    await c.close();
  });
});

test('LRU eviction keeps the total within maxBytes', async () => {
  await withDir(async (dir) => {
    const maxBytes = 8 * 64 * KiB;
    const c = await SsdCache.open({ dirs: [join(dir, 'a'), join(dir, 'b')], maxBytes, freeSpaceRatio: 0 });
    for (let i = 0; i < 40; i++) {
      c.put(`1:0x1:${i}/v/0`, block(i));
      if (i % 3 === 0) await c.flush();
      assert.ok(c.stats().cachedBytes <= maxBytes);
    }
    await c.flush();
    const s = c.stats();
    assert.equal(s.cachedBytes, maxBytes);
    assert.equal(s.blocks, 8);
    // blocks written concurrently enter the LRU in completion order: only those put after the last flush barrier are surely newest
    for (let i = 34; i < 40; i++) assert.equal(c.has(`1:0x1:${i}/v/0`), true, `recent block ${i}`);
    await c.close();
    let files = 0;
    for (const sub of ['a', 'b']) {
      for (const l1 of await readdir(join(dir, sub, 'blocks'))) {
        for (const l2 of await readdir(join(dir, sub, 'blocks', l1))) files += (await readdir(join(dir, sub, 'blocks', l1, l2))).length;
      }
    }
    assert.equal(files, 8);
  });
});

test('dropObject removes every block of the object, queued ones too; cachedBytesOf counts per version', async () => {
  await withDir(async (dir) => {
    const c = await SsdCache.open({ dirs: [dir], maxBytes: 1 << 24, freeSpaceRatio: 0 });
    for (let i = 0; i < 3; i++) c.put(`3:0x2000:17/v1/${i}`, block(i, 4 * KiB));
    c.put('3:0x2000:17/v2/0', block(7, 8 * KiB));
    c.put('3:0x2000:170/v1/0', block(8, 4 * KiB));
    await c.flush();
    assert.equal(c.cachedBytesOf('3:0x2000:17'), 20 * KiB);
    assert.equal(c.cachedBytesOf('3:0x2000:17', 'v1'), 12 * KiB);
    assert.equal(c.cachedBytesOf('3:0x2000:17', 'v2'), 8 * KiB);
    assert.equal(c.cachedBytesOf('3:0x2000:170'), 4 * KiB);
    c.put('3:0x2000:17/v3/0', block(9, 4 * KiB)); // still queued when dropped
    assert.equal(await c.dropObject('3:0x2000:17'), 20 * KiB);
    await c.flush();
    assert.equal(c.cachedBytesOf('3:0x2000:17'), 0);
    assert.equal(c.has('3:0x2000:17/v3/0'), false);
    assert.equal(await c.get('3:0x2000:17/v1/0'), undefined);
    assert.deepEqual(await c.get('3:0x2000:170/v1/0'), block(8, 4 * KiB));
    assert.equal(c.stats().blocks, 1);
    await c.close();
  });
});

test('puts beyond the write queue bound are dropped and counted', async () => {
  await withDir(async (dir) => {
    const c = await SsdCache.open({ dirs: [dir], maxBytes: 1 << 26, freeSpaceRatio: 0, maxQueueBytes: 256 * KiB });
    for (let i = 0; i < 20; i++) c.put(`1:0x1:${i}/v/0`, block(i));
    const dropped = c.stats().writesDropped;
    assert.ok(dropped >= 16, `dropped ${dropped}`);
    await c.flush();
    assert.equal(c.stats().blocks, 20 - dropped);
    await c.close();
  });
});
