/**
 * A file's mtime is when it was written, not when the write-back cache flushed it: the
 * flush carries the client's write time (Lustre's obdo mtime) and the OST keeps it, or the
 * object's mtime from before if that is later.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareTime, now, type Timestamp } from '../src/common/time.js';
import { idifSeq } from '../src/common/fid.js';
import { ObjectStore } from '../src/oss/objstore.js';
import { TestCluster } from './helpers/cluster.js';

const cred = { uid: 0, gid: 0 };
const ms = (t: Timestamp) => t.sec * 1000 + t.nsec / 1e6;

test('the object store keeps the later of the write time given and the mtime it had', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-wb-mtime-'));
  const store = await ObjectStore.open(dir, { fsname: 'testfs', index: 0 });
  try {
    const seq = idifSeq(0);
    const { first } = await store.precreate(seq, 1);
    await store.setattr(seq, first, { mtime: { sec: 900_000_000, nsec: 0 } });
    const early = { sec: 1_000_000_000, nsec: 123_456_000 };
    await store.write(seq, first, 0, Buffer.from('abc'), false, early);
    assert.deepEqual((await store.getattr(seq, first)).mtime, early, 'the given time, to the microsecond');
    const later = { sec: 1_500_000_000, nsec: 0 };
    await store.setattr(seq, first, { mtime: later });
    await store.writeSegments(seq, first, [{ offset: 0, length: 1 }, { offset: 10, length: 1 }], Buffer.from('xy'), false, early);
    assert.deepEqual((await store.getattr(seq, first)).mtime, later, 'an older write time does not move mtime back');
    const before = now();
    await store.write(seq, first, 0, Buffer.from('z'));
    assert.ok(compareTime((await store.getattr(seq, first)).mtime, later) > 0 && ms((await store.getattr(seq, first)).mtime) >= ms(before) - 1000, 'without a time, the write sets it now');
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a cached write flushed later keeps the time it was written, on every client', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ osts: 1 });
  try {
    const a = await cluster.mount();
    const b = await cluster.mount();
    const f = await a.create(a.root, 'late', { mode: 0o644, cred });
    await a.write(f, 0, Buffer.alloc(4096, 1));
    const written = now();
    assert.ok(a.dataCache.stats(a.ostClients()).dirtyBytes > 0, 'the write waits in the write-back cache');
    await new Promise((r) => setTimeout(r, 1200));
    const flushStarted = now();
    await a.fsync(f);
    await a.close(f);
    const seen = (await b.getattr(f.fid)).mtime;
    assert.ok(compareTime(seen, flushStarted) < 0, `mtime ${ms(seen)} is the write's (${ms(written)}), before the flush (${ms(flushStarted)})`);
    assert.ok(compareTime(seen, written) <= 0, 'and not after the write returned');
    await a.unmount();
    await b.unmount();
  } finally {
    await cluster.stop();
  }
});
