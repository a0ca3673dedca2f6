/**
 * SSD block cache bench: put/get MB/s against plain fs.writeFile/readFile of the same
 * blocks in the same run; reopen time of many blocks from the index file vs a scan;
 * and the eviction policy (plain LRU vs segmented LRU) on "5,000 files x 64 KiB read
 * three times, then a one-off scan". Run: node dist/bench/ssd-cache.js
 * Env: STRIA_BENCH_SSD_BLOCKS (default 2000 x 64 KiB blocks for MB/s),
 *      STRIA_BENCH_SSD_REOPEN (default 100000 small blocks for the reopen test).
 */
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SsdCache } from '../src/client/cache/ssd-cache.js';
import { SegmentedLru } from '../src/client/cache/ssd-policy.js';
import { INDEX_FILE } from '../src/client/cache/ssd-index.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCKS = Number(process.env.STRIA_BENCH_SSD_BLOCKS ?? 2000);
const REOPEN_BLOCKS = Number(process.env.STRIA_BENCH_SSD_REOPEN ?? 100_000);
const BLOCK = 64 * KiB;

function blockData(i: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let o = 0; o + 4 <= size; o += 4) b.writeUInt32LE((i * 2654435761 + o) >>> 0, o);
  return b;
}

const mbps = (bytes: number, ms: number): string => ((bytes / MiB) / (ms / 1000)).toFixed(0);

async function throughput(root: string): Promise<void> {
  const blocks = Array.from({ length: 64 }, (_, i) => blockData(i, BLOCK));
  const total = BLOCKS * BLOCK;
  const plainDir = join(root, 'plain');
  await mkdir(plainDir);
  let t = performance.now();
  for (let i = 0; i < BLOCKS; i += 8) {
    await Promise.all(Array.from({ length: Math.min(8, BLOCKS - i) }, (_, j) => writeFile(join(plainDir, `b${i + j}`), blocks[(i + j) % 64]!)));
  }
  const plainW = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < BLOCKS; i += 8) {
    await Promise.all(Array.from({ length: Math.min(8, BLOCKS - i) }, (_, j) => readFile(join(plainDir, `b${i + j}`))));
  }
  const plainR = performance.now() - t;

  const cache = await SsdCache.open({ dirs: [join(root, 'cache')], maxBytes: 2 * total, freeSpaceRatio: 0.05 });
  t = performance.now();
  for (let i = 0; i < BLOCKS; i++) {
    cache.put(`1:0x1:${i}/v/0`, blocks[i % 64]!);
    if (i % 256 === 255) await cache.flush(); // stay below the write-behind queue bound
  }
  await cache.flush();
  const cacheW = performance.now() - t;
  t = performance.now();
  let hits = 0;
  for (let i = 0; i < BLOCKS; i += 8) {
    const got = await Promise.all(Array.from({ length: Math.min(8, BLOCKS - i) }, (_, j) => cache.get(`1:0x1:${i + j}/v/0`)));
    hits += got.filter(Boolean).length;
  }
  const cacheR = performance.now() - t;
  await cache.close();
  console.log(`throughput, ${BLOCKS} x 64 KiB blocks (8 reads in flight):`);
  console.log(`  plain writeFile ${mbps(total, plainW)} MB/s   ssd-cache put+flush ${mbps(total, cacheW)} MB/s`);
  console.log(`  plain readFile  ${mbps(total, plainR)} MB/s   ssd-cache get (crc32c) ${mbps(total, cacheR)} MB/s   hits ${hits}/${BLOCKS}`);
}

async function reopen(root: string): Promise<void> {
  const dir = join(root, 'reopen');
  const opts = { dirs: [dir], maxBytes: 2 ** 40, freeSpaceRatio: 0.05 };
  let cache = await SsdCache.open(opts);
  const data = blockData(7, 1 * KiB);
  let t = performance.now();
  for (let i = 0; i < REOPEN_BLOCKS; i++) {
    cache.put(`1:0x${(i >> 8).toString(16)}:${i}/v/0`, data);
    if (i % 4096 === 4095) await cache.flush();
  }
  await cache.close();
  const fill = performance.now() - t;
  t = performance.now();
  cache = await SsdCache.open(opts);
  const fromIndex = performance.now() - t;
  const n1 = cache.stats().blocks;
  await cache.close();
  await unlink(join(dir, INDEX_FILE));
  t = performance.now();
  cache = await SsdCache.open(opts);
  const fromScan = performance.now() - t;
  const n2 = cache.stats().blocks;
  await cache.close();
  console.log(`reopen with ${REOPEN_BLOCKS} blocks (written in ${(fill / 1000).toFixed(1)} s):`);
  console.log(`  from index file ${fromIndex.toFixed(0)} ms (${n1} blocks)   by scan ${fromScan.toFixed(0)} ms (${n2} blocks)`);
}

/** hit ratio of a policy on: files read three times, then a one-off scan, then the files again */
function policy(protectedShare: number): { hot: number; total: number } {
  const files = 5000;
  const cap = 8000; // in 64 KiB blocks: 500 MiB cache, 312 MiB working set
  const lru = new SegmentedLru<{ size: number }>(cap, protectedShare);
  let hits = 0;
  let reads = 0;
  const read = (key: string): boolean => {
    reads++;
    if (lru.touch(key)) {
      hits++;
      return true;
    }
    for (const [k] of lru.evictionOrder()) {
      if (lru.bytes + 1 <= cap) break;
      lru.remove(k);
    }
    lru.add(key, { size: 1 });
    return false;
  };
  for (let pass = 0; pass < 3; pass++) for (let i = 0; i < files; i++) read(`f${i}`);
  for (let i = 0; i < 16_000; i++) read(`scan${i}`); // one-off 1 GiB scan
  let hot = 0;
  for (let i = 0; i < files; i++) if (read(`f${i}`)) hot++;
  return { hot: hot / files, total: hits / reads };
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'stria-bench-ssd-'));
  try {
    await throughput(root);
    await reopen(root);
    const lru = policy(0);
    const slru = policy(0.8);
    console.log('policy, 5000 files x 64 KiB read 3x, a 1 GiB one-off scan, then the files again (500 MiB cache):');
    console.log(`  plain LRU:     hot-set hits after scan ${(lru.hot * 100).toFixed(0)}%   overall ${(lru.total * 100).toFixed(1)}%`);
    console.log(`  segmented LRU: hot-set hits after scan ${(slru.hot * 100).toFixed(0)}%   overall ${(slru.total * 100).toFixed(1)}%`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
