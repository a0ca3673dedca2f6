/**
 * The client's read path through its data cache, against real OSTs, told by the cache's
 * counters (what reached the OSTs, what readahead planned):
 * - reads that need the same uncached pages at once fetch each page from the OST once;
 * - random 4 KiB reads over a file that fits in the cache fetch it in a few large reads,
 *   each page once (dense-random readahead), and not when the cache is too small for it;
 * - the whole-file decision (max_read_ahead_whole_mb) takes the size from the locks, not a
 *   size from open that the file has outgrown, and reads a small file whole on its second
 *   read, in one open or across two, once per open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { mulberry32 } from './helpers/prng.js';
import type { StriaClient } from '../src/client/client.js';
import { clientPair } from './helpers/client-pair.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const root = { uid: 0, gid: 0 };
let cluster: TestCluster;
let a: StriaClient;
let writer: StriaClient;
clientPair(2, (p) => ({ cluster, a, writer } = p));

/** A file written (and flushed) by the other client, so `a` has none of it cached. */
async function fileFromWriter(name: string, size: number, seed: number, stripeCount = 1): Promise<Buffer> {
  const data = pseudoRandomBuffer(size, seed);
  const f = await writer.create(writer.root, name, { mode: 0o644, cred: root, layout: { stripeCount, stripeSize: MiB } });
  for (let off = 0; off < size; off += 4 * MiB) await writer.write(f, off, data.subarray(off, Math.min(size, off + 4 * MiB)));
  await writer.fsync(f);
  await writer.close(f);
  return data;
}

async function openOnA(name: string) {
  const attr = await a.lookup(a.root, name);
  return a.open(attr.fid);
}

function withTunable<K extends 'maxReadAheadPerFileBytes'>(c: StriaClient, key: K, value: number): () => void {
  const old = c.cache.tunables[key];
  c.cache.tunables[key] = value;
  return () => {
    c.cache.tunables[key] = old;
  };
}

test('reads that need the same uncached pages at once fetch each page from the OST once', { timeout: 60_000 }, async () => {
  const data = await fileFromWriter('same-pages', 8 * MiB, 1);
  const restore = withTunable(a, 'maxReadAheadPerFileBytes', 0);
  try {
    const f = await openOnA('same-pages');
    const s1 = a.cache.stats();
    const ranges = [[0, 4 * MiB], [0, 4 * MiB], [0, 4 * MiB], [2 * MiB, 4 * MiB], [2 * MiB, 4 * MiB], [MiB + 5, 3 * MiB]] as const;
    const got = await Promise.all(ranges.map(([off, len]) => a.read(f, off, len)));
    ranges.forEach(([off, len], i) => assert.ok(got[i]!.equals(data.subarray(off, off + len)), `read ${i} [${off}, +${len})`));
    const s2 = a.cache.stats();
    assert.equal(s2.oss.readBytes - s1.oss.readBytes, 6 * MiB, 'the 6 MiB the reads cover, each byte once');
    await a.close(f);
  } finally {
    restore();
  }
});

test('random 4 KiB reads of a file that fits in the cache take it in a few large reads, each page once', { timeout: 60_000 }, async () => {
  const size = 16 * MiB;
  const data = await fileFromWriter('dense', size, 2);
  const f = await openOnA('dense');
  const s1 = a.cache.stats();
  const rnd = mulberry32(7);
  const blocks = size / (4 * KiB);
  for (let i = 0; i < 600; i++) {
    const off = Math.floor(rnd() * blocks) * 4 * KiB;
    const got = await a.read(f, off, 4 * KiB);
    assert.ok(got.equals(data.subarray(off, off + 4 * KiB)), `random read ${i} at ${off}`);
  }
  // the whole file after it, without readahead of its own: what the random reads left out
  // (or still had in flight) is fetched or waited for here
  const restore = withTunable(a, 'maxReadAheadPerFileBytes', 0);
  try {
    for (let off = 0; off < size; off += MiB) assert.ok((await a.read(f, off, MiB)).equals(data.subarray(off, off + MiB)), `read at ${off}`);
  } finally {
    restore();
  }
  const s2 = a.cache.stats();
  assert.ok(s2.readahead.readaheadBytes > s1.readahead.readaheadBytes, 'readahead planned the chunks the reads went over');
  assert.equal(s2.oss.readBytes - s1.oss.readBytes, size, 'every page came from the OST once');
  const requests = s2.oss.readRequests - s1.oss.readRequests;
  assert.ok(requests <= 64, `${requests} OST reads for ${size / (64 * KiB)} pages`);
  await a.close(f);
});

test('random reads of a file too large for the cache plan no readahead', { timeout: 60_000 }, async () => {
  const small = await cluster.mount({ cache: { maxCachedBytes: 8 * MiB } });
  try {
    const size = 16 * MiB;
    const data = await fileFromWriter('dense-too-big', size, 3);
    const attr = await small.lookup(small.root, 'dense-too-big');
    const f = await small.open(attr.fid);
    const s1 = small.cache.stats();
    const rnd = mulberry32(11);
    for (let i = 0; i < 300; i++) {
      const off = Math.floor(rnd() * (size / (4 * KiB))) * 4 * KiB;
      assert.ok((await small.read(f, off, 4 * KiB)).equals(data.subarray(off, off + 4 * KiB)), `random read ${i} at ${off}`);
    }
    const s2 = small.cache.stats();
    assert.equal(s2.readahead.readaheadBytes - s1.readahead.readaheadBytes, 0, 'nothing planned');
    await small.close(f);
  } finally {
    await small.unmount();
  }
});

test('an open whose size is out of date does not read a grown file whole', { timeout: 60_000 }, async () => {
  const f = await a.create(a.root, 'grown', { mode: 0o644, cred: root, layout: { stripeCount: 1, stripeSize: MiB } });
  // opened while empty: its size at open says 0
  const stale = await a.open(f.fid);
  const data = pseudoRandomBuffer(8 * MiB, 4);
  await a.write(f, 0, data);
  await a.fsync(f);
  const s1 = a.cache.stats();
  // small offsets: with the size at open, this would look like a file under max_read_ahead_whole_mb
  for (let i = 0; i < 3; i++) assert.ok((await a.read(stale, 64 * KiB, 4 * KiB)).equals(data.subarray(64 * KiB, 68 * KiB)));
  const s2 = a.cache.stats();
  assert.equal(s2.readahead.wholeFileReads - s1.readahead.wholeFileReads, 0, 'no whole-file read');
  await a.close(stale);
  await a.close(f);
});

test('a small file is read whole on its second read, in one open or across two, once', { timeout: 60_000 }, async () => {
  const size = MiB;
  const oneOpen = await fileFromWriter('small-one-open', size, 5);
  const s1 = a.cache.stats();
  const f = await openOnA('small-one-open');
  assert.ok((await a.read(f, 0, 4 * KiB)).equals(oneOpen.subarray(0, 4 * KiB)));
  const s2 = a.cache.stats();
  assert.equal(s2.readahead.wholeFileReads - s1.readahead.wholeFileReads, 0, 'a first read is no pattern yet');
  assert.ok((await a.read(f, 512 * KiB, 4 * KiB)).equals(oneOpen.subarray(512 * KiB, 516 * KiB)));
  for (let i = 0; i < 3; i++) await a.read(f, (100 + i) * 4 * KiB, 4 * KiB);
  const s3 = a.cache.stats();
  assert.equal(s3.readahead.wholeFileReads - s2.readahead.wholeFileReads, 1, 'the second read of the open takes the rest, once');
  await a.close(f);

  const acrossOpens = await fileFromWriter('small-two-opens', size, 6);
  const first = await openOnA('small-two-opens');
  await a.read(first, 0, 4 * KiB);
  await a.close(first);
  const s4 = a.cache.stats();
  const second = await openOnA('small-two-opens');
  assert.ok((await a.read(second, 0, 4 * KiB)).equals(acrossOpens.subarray(0, 4 * KiB)));
  const s5 = a.cache.stats();
  assert.equal(s5.readahead.wholeFileReads - s4.readahead.wholeFileReads, 1, 'the first read of the second open takes the rest');
  await a.close(second);
});
