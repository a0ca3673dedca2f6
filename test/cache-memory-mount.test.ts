/**
 * The client's memory cache through a real mount, proven by its counters: a second read
 * of a file takes nothing from the OSSes and hits memory; a write on another client is
 * seen at the next read, which counts a miss; the cache stays within max_cached_mb, and
 * so does the client's memory while it reads a file four times that size.
 * Reads use O_DIRECT (dd iflag=direct) so they reach the client, not the kernel's cache.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { TestCluster } from './helpers/cluster.js';
import { TestMount, sh } from './helpers/mount.js';
import { mountSkip } from './helpers/two-mounts.js';
import { cacheStats, type CacheSnapshot } from './helpers/cache-stats.js';

const MiB = 1024 * 1024;
const MAX_CACHED_MB = 32;

describe('client memory cache', { skip: mountSkip }, () => {
  let cluster: TestCluster;
  let a: TestMount;
  let b: TestMount;

  before(async () => {
    cluster = await TestCluster.start({ osts: 2, stripeCount: 2 });
    a = await TestMount.start(cluster, `allow_other,default_permissions,max_cached_mb=${MAX_CACHED_MB}`);
    b = await TestMount.start(cluster);
  }, { timeout: 120_000 });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await cluster?.stop();
  }, { timeout: 120_000 });

  const stats = (): Promise<CacheSnapshot> => cacheStats(cluster.runDir, a.mountpoint);
  const directRead = async (m: TestMount, name: string): Promise<string> => {
    const r = await sh(`dd if=${m.path(name)} iflag=direct bs=1M status=none | sha256sum`);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split(' ')[0]!;
  };

  test('a second read takes zero bytes from the OSSes and hits memory', { timeout: 120_000 }, async () => {
    let r = await sh(`dd if=/dev/urandom of=${a.path('f8')} bs=1M count=8 conv=fsync status=none && sha256sum ${a.path('f8')}`);
    assert.equal(r.code, 0, r.stderr);
    const want = r.stdout.split(' ')[0]!;
    assert.equal(await directRead(a, 'f8'), want, 'first read');
    const s1 = await stats();
    assert.equal(await directRead(a, 'f8'), want, 'second read');
    const s2 = await stats();
    assert.equal(s2.oss.readBytes - s1.oss.readBytes, 0, 'the second read took nothing from the OSSes');
    assert.ok(s2.memory.hitBytes - s1.memory.hitBytes >= 8 * MiB, `memory served the 8 MiB (hit bytes ${s2.memory.hitBytes - s1.memory.hitBytes})`);
    assert.equal(s2.memory.missRequests - s1.memory.missRequests, 0, 'no memory misses');
  });

  test("another client's write is read at once, as a miss", { timeout: 120_000 }, async () => {
    assert.ok((await directRead(a, 'f8')).length > 0);
    const r = await sh(`dd if=/dev/urandom of=${b.path('f8')} bs=1M count=8 conv=notrunc,fsync status=none && sha256sum ${b.path('f8')}`);
    assert.equal(r.code, 0, r.stderr);
    const fresh = r.stdout.split(' ')[0]!;
    const s1 = await stats();
    assert.equal(await directRead(a, 'f8'), fresh, 'A reads what B wrote');
    const s2 = await stats();
    assert.ok(s2.memory.missRequests > s1.memory.missRequests, 'the read counted memory misses');
    assert.ok(s2.oss.readBytes - s1.oss.readBytes >= 8 * MiB, 'and went to the OSSes');
  });

  test(`memory stays within max_cached_mb=${MAX_CACHED_MB} while a file of 4x that is read`, { timeout: 180_000 }, async () => {
    const size = 4 * MAX_CACHED_MB;
    const r = await sh(`dd if=/dev/zero of=${a.path('big')} bs=1M count=${size} conv=fsync status=none`);
    assert.equal(r.code, 0, r.stderr);
    const pid = a.proc!.pid!;
    const rss = async () => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
    // a first pass settles what the process allocates once (buffers, pools)
    await directRead(a, 'big');
    const base = await rss();
    let peak = base;
    let maxCached = 0;
    let reading = true;
    const sampler = (async () => {
      for (let i = 0; i < 20_000 && reading; i++) {
        peak = Math.max(peak, await rss());
        maxCached = Math.max(maxCached, (await stats()).memory.cachedBytes);
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    for (let pass = 0; pass < 2; pass++) await directRead(a, 'big');
    reading = false;
    await sampler;
    const s = await stats();
    assert.equal(s.memory.maxBytes, MAX_CACHED_MB * MiB);
    assert.ok(maxCached <= MAX_CACHED_MB * MiB, `cached bytes peaked at ${maxCached}`);
    assert.ok(s.memory.cachedBytes <= MAX_CACHED_MB * MiB);
    // the cache is bounded, so the process does not grow with the file (it would by 128 MiB)
    assert.ok(peak - base < 2 * MAX_CACHED_MB * MiB, `RSS grew by ${((peak - base) / MiB).toFixed(1)} MiB while reading ${size} MiB`);
  });
});
