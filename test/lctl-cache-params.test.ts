/**
 * The client cache's llite parameters, over a cache whose counters the test sets:
 * max_cached_mb in Lustre's users/max_cached_mb/used_mb/unused_mb form and settable in MiB
 * or with a unit; the max_read_ahead*_mb tunables with Lustre's ordering rule (whole <=
 * per file <= total, a lower total lowering the others); read_ahead_stats and the cache lines of llite.*.stats in the lprocfs
 * stats form, restarting from zero when written; cache_stats with bytes and requests per level.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CacheStatsSnapshot, CacheTunables } from '../src/client/cache/types.js';
import type { Fid } from '../src/common/fid.js';
import { lliteCacheParams, lliteStatsParam, parseMbValue, type ClientCache } from '../src/ctl/cache-params.js';
import { LliteStats } from '../src/ctl/llite-stats.js';
import { ParamRegistry } from '../src/ctl/params.js';
import { StriaError } from '../src/common/errno.js';

const MiB = 1 << 20;

/** Counters as plain data: the test moves them. */
class CountingCache implements ClientCache {
  tunables: CacheTunables = {
    maxCachedBytes: 64 * MiB,
    maxReadAheadBytes: 64 * MiB,
    maxReadAheadPerFileBytes: 16 * MiB,
    maxReadAheadWholeBytes: 4 * MiB,
    maxDirtyBytesPerOst: 32 * MiB,
  };
  s: CacheStatsSnapshot = {
    memory: { hitBytes: 0, hitRequests: 0, missBytes: 0, missRequests: 0, cachedBytes: 12 * MiB + 5, maxBytes: 64 * MiB, pageSize: 65536 },
    ssd: { hitBytes: 0, hitRequests: 0, missBytes: 0, missRequests: 0, enabled: false, cachedBytes: 0, maxBytes: 0, errors: 0, dirs: [] },
    oss: { readBytes: 0, readRequests: 0, writeBytes: 0, writeRequests: 0 },
    dirtyBytes: 0,
    maxDirtyBytes: 32 * MiB,
    grantBytes: 0,
    readahead: { hits: 0, misses: 0, readaheadBytes: 0, wholeFileReads: 0, stridedWindows: 0 },
  };
  async warmup(_fid: Fid) {
    return { size: 0, loadedBytes: 0 };
  }
  async check(_fid: Fid) {
    return { size: 0, cachedBytes: 0 };
  }
  async evict(_fid: Fid) {
    return 0;
  }
  stats(): CacheStatsSnapshot {
    return structuredClone(this.s);
  }
}

const LL = 'llite.testfs-ffff000000000001';

function setup() {
  const cache = new CountingCache();
  const llite = new LliteStats();
  const reg = new ParamRegistry();
  for (const [name, p] of lliteCacheParams(LL, cache)) reg.register(name, p);
  reg.register(`${LL}.stats`, lliteStatsParam(llite, cache));
  const param = (name: string) => {
    const [node] = reg.match(`${LL}.${name}`);
    assert.ok(node?.param, `${name} is registered`);
    return node.param;
  };
  const get = async (name: string) => param(name).get();
  const set = async (name: string, v: string) => param(name).set!(v);
  return { cache, llite, get, set };
}

const errno = (code: string) => (e: unknown) => e instanceof StriaError && errnoOf(e) === code;
const errnoOf = (e: StriaError) => ({ 22: 'EINVAL', 34: 'ERANGE' })[e.errno as 22 | 34];

test('max_cached_mb reads like Lustre and takes MiB, a unit, or its own "max_cached_mb: N" line', async () => {
  const { cache, get, set } = setup();
  assert.equal(await get('max_cached_mb'), 'users: 1\nmax_cached_mb: 64\nused_mb: 12\nunused_mb: 52\n');
  await set('max_cached_mb', '128');
  assert.equal(cache.tunables.maxCachedBytes, 128 * MiB);
  await set('max_cached_mb', '2G');
  assert.equal(cache.tunables.maxCachedBytes, 2048 * MiB);
  await set('max_cached_mb', 'max_cached_mb: 32\n');
  assert.equal(cache.tunables.maxCachedBytes, 32 * MiB);
  assert.match(await get('max_cached_mb'), /^users: 1\nmax_cached_mb: 32\nused_mb: 12\nunused_mb: 20\n$/);
  await assert.rejects(async () => set('max_cached_mb', 'lots'), errno('EINVAL'));
  await assert.rejects(async () => set('max_cached_mb', '0'), errno('ERANGE'));
  assert.equal(cache.tunables.maxCachedBytes, 32 * MiB, 'a refused value changes nothing');
  assert.equal(parseMbValue('1048576B', 'x'), MiB);
});

test('max_read_ahead*_mb read and set whole MiB; per-file may not exceed the total, whole-file not the per-file', async () => {
  const { cache, get, set } = setup();
  assert.equal(await get('max_read_ahead_mb'), '64');
  assert.equal(await get('max_read_ahead_per_file_mb'), '16');
  assert.equal(await get('max_read_ahead_whole_mb'), '4');
  await set('max_read_ahead_mb', '256');
  await set('max_read_ahead_per_file_mb', '64');
  await set('max_read_ahead_whole_mb', '8');
  assert.deepEqual(
    [cache.tunables.maxReadAheadBytes, cache.tunables.maxReadAheadPerFileBytes, cache.tunables.maxReadAheadWholeBytes],
    [256 * MiB, 64 * MiB, 8 * MiB],
  );
  await assert.rejects(async () => set('max_read_ahead_per_file_mb', '257'), errno('ERANGE'));
  await assert.rejects(async () => set('max_read_ahead_whole_mb', '65'), errno('ERANGE'));
  await set('max_read_ahead_mb', '32');
  assert.deepEqual([await get('max_read_ahead_mb'), await get('max_read_ahead_per_file_mb'), await get('max_read_ahead_whole_mb')], ['32', '32', '8'], 'a lower total lowers the per-file limit');
  await set('max_read_ahead_mb', '0');
  assert.deepEqual([await get('max_read_ahead_mb'), await get('max_read_ahead_per_file_mb'), await get('max_read_ahead_whole_mb')], ['0', '0', '0'], 'zero turns readahead off');
});

test('read_ahead_stats: lprocfs header, then hits and misses in pages; writing restarts it from zero', async () => {
  const { cache, get, set } = setup();
  const empty = await get('read_ahead_stats');
  assert.match(empty, /^snapshot_time +\d+\.\d{9} secs\.nsecs\nstart_time +\d+\.\d{9} secs\.nsecs\nelapsed_time +\d+\.\d{9} secs\.nsecs\n$/);
  cache.s.readahead = { hits: 120, misses: 7, readaheadBytes: 8 * MiB, wholeFileReads: 3, stridedWindows: 0 };
  const v = await get('read_ahead_stats');
  assert.match(v, /\nhits +120 samples \[pages\]\nmisses +7 samples \[pages\]\nwhole_file_read +3 samples \[reqs\]\n$/);
  assert.doesNotMatch(v, /strided_window/, 'counters at zero are not printed');
  await set('read_ahead_stats', 'clear');
  assert.doesNotMatch(await get('read_ahead_stats'), /hits|misses/);
  cache.s.readahead.hits += 5;
  assert.match(await get('read_ahead_stats'), /\nhits +5 samples \[pages\]\n$/);
});

test('llite.*.stats adds the cache hits and misses per level after the VFS counters; writing clears both', async () => {
  const { cache, llite, get, set } = setup();
  llite.io('read', 4096, 10);
  cache.s.memory.hitRequests = 9;
  cache.s.memory.missRequests = 2;
  cache.s.ssd.hitRequests = 1;
  const v = await get('stats');
  assert.match(v, /\nread_bytes +1 samples \[bytes\] 4096 4096 4096 16777216\n/);
  assert.match(v, /\ncache_hit +9 samples \[reqs\]\ncache_miss +2 samples \[reqs\]\nssd_cache_hit +1 samples \[reqs\]\n$/);
  await set('stats', '0');
  assert.equal((await get('stats')).split('\n').filter(Boolean).length, 3, 'only the header after clearing');
  cache.s.memory.missRequests = 3;
  assert.match(await get('stats'), /\ncache_miss +1 samples \[reqs\]\n$/);
});

test('cache_stats: bytes and requests each level served since the last write, and the levels\' sizes', async () => {
  const { cache, get, set } = setup();
  cache.s.memory.hitBytes = 10 * MiB;
  cache.s.memory.hitRequests = 10;
  cache.s.oss.readBytes = 3 * MiB;
  cache.s.oss.readRequests = 3;
  cache.s.dirtyBytes = 4096;
  cache.s.grantBytes = 8 * MiB;
  const v = await get('cache_stats');
  assert.match(v, /^snapshot_time: +\d+\.\d{9} secs\.nsecs\n/);
  assert.match(v, /\nmem_hit_bytes: 10485760\nmem_hit_requests: 10\n/);
  assert.match(v, /\noss_read_bytes: 3145728\noss_read_requests: 3\n/);
  assert.match(v, /\nmem_cached_bytes: 12582917\n/);
  assert.match(v, /\ndirty_bytes: 4096\nmax_dirty_bytes: 33554432\ngrant_bytes: 8388608\n$/);
  await set('cache_stats', 'clear');
  const after = await get('cache_stats');
  assert.match(after, /\nmem_hit_bytes: 0\n/);
  assert.match(after, /\ngrant_bytes: 8388608\n$/, 'sizes are not counters: they stay');
});
