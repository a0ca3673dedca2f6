/**
 * HSM state in the MDT namespace (reference §7.1, §7.2): hsm_set rules and permissions,
 * DIRTY on open for write and truncate, the checks of a release and what it leaves, and
 * the archive / restore / remove completions, all persisted with the inode.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_FID } from '../src/common/fid.js';
import { HS, formatHsmState } from '../src/hsm/flags.js';
import type { Namespace, ReleaseSpec } from '../src/mds/namespace.js';
import type { Fid } from '../src/common/fid.js';
import { file, mkLayout, withNamespace, type FidGen } from './helpers/namespace-fixture.js';

const code = (c: string) => (e: Error & { code?: string }) => {
  assert.equal(e.code, c, e.message);
  return true;
};
const OWNER = { uid: 1000, gid: 1000 };
const OTHER = { uid: 1001, gid: 1001 };
const objects = [
  { ostIdx: 0, seq: 0x100000000, oid: 41 },
  { ostIdx: 1, seq: 0x100010000, oid: 42 },
];
const COPY = { dataVersion: 'v1:abc', size: 5000, checksum: 'sha256:00ff' };
const T = { atime: { sec: 100, nsec: 1 }, mtime: { sec: 200, nsec: 2 }, ctime: { sec: 300, nsec: 3 } };
const RELEASE: ReleaseSpec = { dataVersion: COPY.dataVersion, size: COPY.size, ...T };

async function archived(ns: Namespace, fids: FidGen, name = 'f'): Promise<Fid> {
  const f = await ns.create(ROOT_FID, name, file(fids.next(), { layout: mkLayout(objects) }));
  await ns.hsmCompleteArchive(f.fid, 1, COPY, false);
  return f.fid;
}

test('a new file has no HSM state; root sets any flag but released, with an archive id', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    assert.deepEqual(await ns.hsmState(f.fid), { flags: 0, archiveId: 0 });
    const ino = await ns.hsmSetState(f.fid, HS.EXISTS | HS.ARCHIVED | HS.LOST, 0, 7);
    assert.equal(formatHsmState(ino.hsm), '(0x00000049) exists archived lost_from_hsm, archive_id:7');
    await ns.hsmSetState(f.fid, 0, HS.LOST);
    assert.deepEqual(await ns.hsmState(f.fid), { flags: HS.EXISTS | HS.ARCHIVED, archiveId: 7 });
    await assert.rejects(ns.hsmSetState(f.fid, HS.RELEASED, 0), code('BAD_HSM_FLAGS'));
    await assert.rejects(ns.hsmSetState(f.fid, 0, HS.RELEASED), code('BAD_HSM_FLAGS'));
    await assert.rejects(ns.hsmSetState(f.fid, 0x80, 0), code('BAD_HSM_FLAGS'));
  }));

test('dirty needs exists; a failed hsm_set changes nothing', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await assert.rejects(ns.hsmSetState(f.fid, HS.DIRTY, 0), code('BAD_HSM_FLAGS'));
    await ns.hsmSetState(f.fid, HS.EXISTS | HS.DIRTY, 0);
    await assert.rejects(ns.hsmSetState(f.fid, 0, HS.EXISTS), code('BAD_HSM_FLAGS'));
    assert.deepEqual(await ns.hsmState(f.fid), { flags: HS.EXISTS | HS.DIRTY, archiveId: 0 });
  }));

test('users change only norelease, noarchive and dirty, and only on their own files', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next(), { uid: OWNER.uid }));
    await ns.hsmSetState(f.fid, HS.NORELEASE | HS.NOARCHIVE, 0, undefined, OWNER);
    assert.equal((await ns.hsmState(f.fid)).flags, HS.NORELEASE | HS.NOARCHIVE);
    await assert.rejects(ns.hsmSetState(f.fid, HS.EXISTS, 0, undefined, OWNER), code('EPERM'));
    await assert.rejects(ns.hsmSetState(f.fid, 0, HS.NORELEASE, undefined, OTHER), code('EPERM'));
    await assert.rejects(ns.hsmSetState(f.fid, 0, 0, 2, OWNER), code('EPERM'));
    await ns.hsmSetState(f.fid, 0, HS.NORELEASE, undefined, { uid: 0, gid: 0 });
    assert.equal((await ns.hsmState(f.fid)).flags, HS.NOARCHIVE);
    const d = await ns.create(ROOT_FID, 'd', { fid: fids.next(), type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    await assert.rejects(ns.hsmSetState(d.fid, HS.NOARCHIVE, 0), code('NOT_REGULAR'));
  }));

test('a modified close (hsmMarkDirty) or a truncate makes an archived file dirty; opens and other setattrs do not', () =>
  withNamespace(async ({ ns, fids }) => {
    const a = await archived(ns, fids, 'a');
    assert.equal((await ns.openHsm(a, { write: false })).dirtied, false);
    await ns.setattr(a, { mode: 0o600 });
    assert.equal((await ns.hsmState(a)).flags, HS.EXISTS | HS.ARCHIVED);
    const w = await ns.openHsm(a, { write: true });
    assert.equal(w.dirtied, false, 'an open for write alone changes no data');
    assert.equal(await ns.hsmMarkDirty(a), true, 'what the close of a handle that wrote does');
    assert.equal((await ns.hsmState(a)).flags, HS.EXISTS | HS.ARCHIVED | HS.DIRTY);
    await ns.openHsm(a, { write: true });
    assert.equal(await ns.hsmMarkDirty(a), false, 'already dirty');
    await ns.close(a, { write: true });
    await ns.close(a, { write: true });
    await ns.close(a);

    const b = await archived(ns, fids, 'b');
    const t = await ns.setattrHsm(b, { size: 10 });
    assert.equal(t.dirtied, true);
    assert.equal((await ns.hsmState(b)).flags, HS.EXISTS | HS.ARCHIVED | HS.DIRTY);

    const plain = await ns.create(ROOT_FID, 'plain', file(fids.next()));
    assert.equal((await ns.openHsm(plain.fid, { write: true })).dirtied, false, 'no archive copy: nothing to make stale');
    assert.equal(await ns.hsmMarkDirty(plain.fid), false);
    await ns.close(plain.fid, { write: true });
    assert.equal((await ns.hsmState(plain.fid)).flags, 0);
  }));

test('release refuses a file whose archive copy is missing, stale or must stay, and one open for write', () =>
  withNamespace(async ({ ns, fids }) => {
    const plain = await ns.create(ROOT_FID, 'plain', file(fids.next(), { layout: mkLayout(objects) }));
    await assert.rejects(ns.hsmRelease(plain.fid, RELEASE), code('NOT_ARCHIVED'));
    const f = await archived(ns, fids);
    await assert.rejects(ns.hsmRelease(f, { ...RELEASE, dataVersion: 'v1:other' }), code('DATA_VERSION'));
    await assert.rejects(ns.hsmRelease(f, { ...RELEASE, size: COPY.size + 1 }), code('ARCHIVE_SIZE'));
    for (const [flag, c] of [[HS.NORELEASE, 'NORELEASE'], [HS.LOST, 'LOST'], [HS.DIRTY, 'DIRTY']] as const) {
      await ns.hsmSetState(f, flag, 0);
      await assert.rejects(ns.hsmRelease(f, RELEASE), code(c));
      await ns.hsmSetState(f, 0, flag);
    }
    await ns.open(f, { write: true });
    await assert.rejects(ns.hsmRelease(f, RELEASE), code('OPEN_FOR_WRITE'));
    assert.equal(ns.isOpenForWrite(f), true);
    await ns.hsmMarkDirty(f); // the writer's close: it wrote
    await ns.close(f, { write: true });
    assert.equal(ns.isOpenForWrite(f), false);
    await assert.rejects(ns.hsmRelease(f, RELEASE), code('DIRTY'));
    const ino = await ns.getattr(f);
    assert.deepEqual(ino.layout?.objects, objects, 'nothing changed');
  }));

test('release installs the stub layout, keeps size and times, hands back the objects; twice is a no-op', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next(), { layout: mkLayout(objects, { layoutGen: 4, pool: 'fast', stripeOffset: 1 }) }));
    await ns.hsmCompleteArchive(f.fid, 2, COPY, false);
    const r = await ns.hsmRelease(f.fid, RELEASE);
    assert.equal(r.released, true);
    assert.deepEqual(r.destroy, objects);
    assert.deepEqual(r.inode.layout, {
      pattern: 'released', stripeSize: 1 << 20, stripeCount: 2, stripeOffset: 1, pool: 'fast', layoutGen: 5, objects: [],
    });
    assert.equal(r.inode.size, COPY.size);
    assert.deepEqual([r.inode.atime, r.inode.mtime, r.inode.ctime], [T.atime, T.mtime, T.ctime]);
    assert.equal(formatHsmState(r.inode.hsm), '(0x0000000d) released exists archived, archive_id:2');
    assert.deepEqual(await ns.getattr(f.fid), r.inode, 'stored as answered');
    const again = await ns.hsmRelease(f.fid, { ...RELEASE, dataVersion: 'whatever' });
    assert.equal(again.released, false);
    assert.deepEqual(again.destroy, []);
  }));

test('a released file: no truncate, no dirty on open for write, no remove of its only copy, no archive', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await archived(ns, fids);
    await ns.hsmRelease(f, RELEASE);
    await assert.rejects(ns.setattr(f, { size: 0 }), code('RELEASED'));
    assert.equal((await ns.openHsm(f, { write: true })).dirtied, false);
    await ns.close(f, { write: true });
    await assert.rejects(ns.hsmSetState(f, HS.DIRTY, 0), code('BAD_HSM_FLAGS'));
    await assert.rejects(ns.hsmSetState(f, 0, HS.ARCHIVED), code('BAD_HSM_FLAGS'));
    await assert.rejects(ns.hsmCompleteRemove(f), code('RELEASED'));
    await assert.rejects(ns.hsmCompleteArchive(f, 1, COPY, false), code('RELEASED'));
    assert.equal((await ns.hsmState(f)).flags, HS.EXISTS | HS.ARCHIVED | HS.RELEASED);
  }));

test('an archive that completes while the file is open for write leaves it dirty', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next(), { layout: mkLayout(objects) }));
    await ns.open(f.fid, { write: true });
    const ino = await ns.hsmCompleteArchive(f.fid, 1, COPY, false);
    assert.equal(ino.hsm?.flags, HS.EXISTS | HS.ARCHIVED | HS.DIRTY);
    await ns.close(f.fid, { write: true });
    const g = await ns.create(ROOT_FID, 'g', file(fids.next(), { layout: mkLayout(objects) }));
    assert.equal((await ns.hsmCompleteArchive(g.fid, 1, COPY, true)).hsm?.flags, HS.EXISTS | HS.ARCHIVED | HS.DIRTY);
    // a new archive of a dirty file clears DIRTY and LOST and records the new copy
    await ns.hsmSetState(g.fid, HS.LOST, 0);
    const again = await ns.hsmCompleteArchive(g.fid, 1, { ...COPY, dataVersion: 'v1:new' }, false);
    assert.deepEqual(again.hsm, { flags: HS.EXISTS | HS.ARCHIVED, archiveId: 1, archVer: 'v1:new', archSize: COPY.size, archChecksum: COPY.checksum });
    await assert.rejects(ns.hsmCompleteArchive(g.fid, 0, COPY, false), code('BAD_ARCHIVE_ID'));
  }));

test('restore completion installs the new objects one generation later; a replay is a no-op', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await archived(ns, fids);
    const stub = (await ns.hsmRelease(f, RELEASE)).inode.layout!;
    const fresh = [
      { ostIdx: 0, seq: 0x100000000, oid: 9000 },
      { ostIdx: 1, seq: 0x100010000, oid: 9001 },
    ];
    const layout = mkLayout(fresh, { layoutGen: 0 });
    await assert.rejects(ns.hsmCompleteRestore(f, { ...layout, pattern: 'released', objects: [] }), code('BAD_LAYOUT'));
    const ino = await ns.hsmCompleteRestore(f, layout, 'v1:restored');
    assert.deepEqual(ino.layout, { ...layout, layoutGen: stub.layoutGen + 1 });
    assert.equal(ino.hsm?.flags, HS.EXISTS | HS.ARCHIVED);
    assert.equal(ino.hsm?.archVer, 'v1:restored', 'the copy is current for the restored objects');
    assert.equal(ino.size, COPY.size);
    assert.deepEqual(ino.mtime, T.mtime);
    const used = await ns.lastObjectsUsed();
    assert.equal(used.get(0)?.oid, 9000, 'restored objects are recorded as used');
    assert.equal(used.get(1)?.oid, 9001);
    assert.deepEqual(await ns.hsmCompleteRestore(f, layout), ino, 'completed twice: same result');
    await assert.rejects(ns.hsmCompleteRestore(f, mkLayout([{ ostIdx: 0, seq: 0x100000000, oid: 9100 }])), code('NOT_RELEASED'));
    // the restored file can be released again without a new archive
    const again = await ns.hsmRelease(f, { ...RELEASE, dataVersion: 'v1:restored' });
    assert.deepEqual(again.destroy, fresh);
  }));

test('remove completion forgets the copy; a FID whose inode is gone is nothing to update', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await archived(ns, fids);
    await ns.hsmSetState(f, HS.DIRTY | HS.NORELEASE, 0);
    const ino = await ns.hsmCompleteRemove(f);
    assert.deepEqual(ino?.hsm, { flags: HS.NORELEASE, archiveId: 1 });
    assert.equal(await ns.hsmCompleteRemove(fids.next()), undefined);
  }));

test('HSM state survives a restart; open-for-write counts do not', () =>
  withNamespace(async (fx) => {
    const f = await archived(fx.ns, fx.fids);
    await fx.ns.open(f, { write: true });
    const before = await fx.ns.getattr(f);
    const ns = await fx.restart();
    assert.deepEqual((await ns.getattr(f)).hsm, before.hsm);
    assert.equal(ns.isOpenForWrite(f), false);
  }));
