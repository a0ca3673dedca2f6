/**
 * The policy engine's index (LMDB in its state directory): the archive queue holds the
 * files needing an archive by modification time, the release queue per OST the archived
 * clean files by access time, both follow every change of an entry, skip marks last until
 * the file changes, and everything survives a reopen.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileIndex, type FileEntry } from '../src/hsm/policy/file-index.js';
import { HS } from '../src/hsm/flags.js';

const base = mkdtempSync(join(tmpdir(), 'stria-policy-index-'));
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

const ARCHIVED = HS.EXISTS | HS.ARCHIVED;

function entry(oid: number, over: Partial<FileEntry> = {}): FileEntry {
  return {
    fid: { seq: 0x200000400, oid, ver: 0 }, size: 4096, mtime: 1000 + oid, atime: 5000 - oid, ctime: 1000 + oid,
    hsm: 0, archiveId: 0, objects: [{ ost: 0, bytes: 4096 }], seen: 0, ...over,
  };
}

const oids = (list: FileEntry[]) => list.map((e) => e.fid.oid);

test('the archive queue: files needing an archive, oldest modification first, up to a time', () => {
  const idx = FileIndex.open(join(base, `i${n++}`));
  try {
    idx.batch(() => {
      idx.put(entry(1, { mtime: 300 }));
      idx.put(entry(2, { mtime: 100 }));
      idx.put(entry(3, { mtime: 200, hsm: ARCHIVED }));
      idx.put(entry(4, { mtime: 50, hsm: ARCHIVED | HS.DIRTY }));
      idx.put(entry(5, { mtime: 10, hsm: HS.NOARCHIVE }));
      idx.put(entry(6, { mtime: 20, hsm: ARCHIVED | HS.RELEASED, objects: [] }));
    });
    assert.deepEqual(oids(idx.archiveCandidates(Infinity, 'mark', 0, 100)), [4, 2, 1]);
    assert.deepEqual(oids(idx.archiveCandidates(150, 'mark', 0, 100)), [4, 2]);
    assert.deepEqual(oids(idx.archiveCandidates(Infinity, 'mark', 0, 2)), [4, 2]);

    // archived now: it leaves the queue; modified: it moves
    idx.batch(() => {
      idx.put(entry(2, { mtime: 100, hsm: ARCHIVED }));
      idx.put(entry(1, { mtime: 20 }));
    });
    assert.deepEqual(oids(idx.archiveCandidates(Infinity, 'mark', 0, 100)), [1, 4]);

    // asked at 500: skipped by a cycle that waits for asks older than 400, not by one waiting for asks older than 600
    idx.batch(() => idx.put({ ...idx.get({ seq: 0x200000400, oid: 1, ver: 0 })!, archiveAsked: 500 }));
    assert.deepEqual(oids(idx.archiveCandidates(Infinity, 'mark', 400, 100)), [4]);
    assert.deepEqual(oids(idx.archiveCandidates(Infinity, 'mark', 600, 100)), [1, 4]);

    // a skip mark hides the file under the same mark only, until it changes
    idx.batch(() => idx.skipArchive(idx.get({ seq: 0x200000400, oid: 4, ver: 0 })!, 'mark'));
    assert.deepEqual(oids(idx.archiveCandidates(Infinity, 'mark', 600, 100)), [1]);
    assert.deepEqual(oids(idx.archiveCandidates(Infinity, 'other', 600, 100)), [1, 4]);
    idx.batch(() => idx.put(entry(4, { mtime: 50, hsm: ARCHIVED | HS.DIRTY, size: 1 })));
    assert.deepEqual(oids(idx.archiveCandidates(Infinity, 'mark', 600, 100)), [1, 4]);

    idx.batch(() => idx.delete({ seq: 0x200000400, oid: 1, ver: 0 }));
    assert.deepEqual(oids(idx.archiveCandidates(Infinity, 'mark', 600, 100)), [4]);
    assert.equal(idx.get({ seq: 0x200000400, oid: 1, ver: 0 }), undefined);
  } finally {
    void idx.close();
  }
});

test('the release queue: per OST, archived clean files only, coldest first, paged', () => {
  const idx = FileIndex.open(join(base, `i${n++}`));
  try {
    idx.batch(() => {
      idx.put(entry(1, { hsm: ARCHIVED, atime: 30, objects: [{ ost: 0, bytes: 1 }, { ost: 1, bytes: 1 }] }));
      idx.put(entry(2, { hsm: ARCHIVED, atime: 10, objects: [{ ost: 1, bytes: 1 }] }));
      idx.put(entry(3, { hsm: ARCHIVED, atime: 20, objects: [{ ost: 0, bytes: 1 }] }));
      idx.put(entry(4, { hsm: ARCHIVED | HS.DIRTY, atime: 1, objects: [{ ost: 0, bytes: 1 }] }));
      idx.put(entry(5, { hsm: ARCHIVED | HS.NORELEASE, atime: 1, objects: [{ ost: 0, bytes: 1 }] }));
      idx.put(entry(6, { hsm: ARCHIVED | HS.LOST, atime: 1, objects: [{ ost: 0, bytes: 1 }] }));
      idx.put(entry(7, { hsm: 0, atime: 1, objects: [{ ost: 0, bytes: 1 }] }));
      idx.put(entry(8, { hsm: ARCHIVED | HS.RELEASED, atime: 1, objects: [] }));
    });
    assert.deepEqual(oids(idx.releaseCandidates(0, 'm', 10).files), [3, 1]);
    assert.deepEqual(oids(idx.releaseCandidates(1, 'm', 10).files), [2, 1]);
    assert.deepEqual(oids(idx.releaseCandidates(2, 'm', 10).files), []);

    const p1 = idx.releaseCandidates(0, 'm', 1);
    assert.deepEqual(oids(p1.files), [3]);
    const p2 = idx.releaseCandidates(0, 'm', 1, p1.next);
    assert.deepEqual(oids(p2.files), [1]);
    const p3 = idx.releaseCandidates(0, 'm', 1, p2.next);
    assert.deepEqual(oids(p3.files), []);

    // accessed again: it goes to the back
    idx.batch(() => idx.put(entry(3, { hsm: ARCHIVED, atime: 99, objects: [{ ost: 0, bytes: 1 }] })));
    assert.deepEqual(oids(idx.releaseCandidates(0, 'm', 10).files), [1, 3]);
    // released: gone from every OST's queue
    idx.batch(() => idx.put(entry(1, { hsm: ARCHIVED | HS.RELEASED, atime: 30, objects: [] })));
    assert.deepEqual(oids(idx.releaseCandidates(0, 'm', 10).files), [3]);
    assert.deepEqual(oids(idx.releaseCandidates(1, 'm', 10).files), [2]);
    idx.batch(() => idx.skipRelease(idx.get({ seq: 0x200000400, oid: 3, ver: 0 })!, 'm'));
    assert.deepEqual(oids(idx.releaseCandidates(0, 'm', 10).files), []);
    assert.deepEqual(oids(idx.releaseCandidates(0, 'n', 10).files), [3]);
  } finally {
    void idx.close();
  }
});

test('removals come due in time order; dirs and meta persist across a reopen', async () => {
  const dir = join(base, `i${n++}`);
  const idx = FileIndex.open(dir);
  idx.batch(() => {
    idx.addRemoval(300, { fid: { seq: 1, oid: 3, ver: 0 }, archiveId: 1, deleted: 0, attempts: 0 });
    idx.addRemoval(100, { fid: { seq: 1, oid: 1, ver: 0 }, archiveId: 2, deleted: 0, attempts: 0 });
    idx.addRemoval(200, { fid: { seq: 1, oid: 2, ver: 0 }, archiveId: 1, deleted: 0, attempts: 1 });
    idx.setDir({ seq: 1, oid: 9, ver: 0 }, { parent: 'root', name: 'd' });
    idx.setMeta('x', { a: 1 });
    idx.put(entry(1));
  });
  assert.deepEqual([...idx.dueRemovals(250)].map((d) => [d.due, d.removal.fid.oid]), [[100, 1], [200, 2]]);
  idx.batch(() => idx.dropRemoval(100, { seq: 1, oid: 1, ver: 0 }));
  await idx.close();

  const again = FileIndex.open(dir);
  try {
    assert.deepEqual([...again.dueRemovals(1000)].map((d) => d.removal.fid.oid), [2, 3]);
    assert.deepEqual(again.getDir('1:9:0'), { parent: 'root', name: 'd' });
    assert.ok(again.isDir({ seq: 1, oid: 9, ver: 0 }));
    assert.deepEqual(again.getMeta('x'), { a: 1 });
    assert.equal(again.fileCount(), 1);
    assert.deepEqual(oids(again.archiveCandidates(Infinity, '', 0, 10)), [1]);
  } finally {
    await again.close();
  }
});
