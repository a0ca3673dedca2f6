/** Namespace: open-unlinked files (orphans) live until their last close or the next start-up. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_FID } from '../src/common/fid.js';
import { K } from '../src/mds/keys.js';
import { dir, file, mkLayout, withNamespace } from './helpers/namespace-fixture.js';

const code = (c: string) => (e: Error & { code?: string }) => e.code === c;
const objects = [
  { ostIdx: 0, seq: 0x100000000, oid: 21 },
  { ostIdx: 3, seq: 0x100030000, oid: 22 },
];

test('unlinking an open file keeps it as an orphan until the last close, which hands back its objects', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next(), { layout: mkLayout(objects) }));
    await ns.setxattr(f.fid, 'user.a', Buffer.from('1'), {});
    await ns.open(f.fid);
    await ns.open(f.fid);
    const r = await ns.unlink(ROOT_FID, 'f', { dir: false });
    assert.deepEqual(r.destroy, [], 'nothing is destroyed while open');
    assert.equal(r.inode.nlink, 0);
    await assert.rejects(ns.lookup(ROOT_FID, 'f'), code('ENOENT'));
    const orphan = await ns.getattr(f.fid);
    assert.equal(orphan.nlink, 0, 'the open file is still there by FID');
    assert.deepEqual(await ns.getxattr(f.fid, 'user.a'), Buffer.from('1'));
    assert.ok(await store.get(K.orphan(f.fid)), 'recorded as an orphan');
    assert.deepEqual(await ns.counts(), { inodes: 2 });

    assert.deepEqual(await ns.close(f.fid), { destroy: [] }, 'one handle is still open');
    assert.ok(await ns.getattr(f.fid));
    assert.deepEqual(await ns.close(f.fid), { destroy: objects });
    await assert.rejects(ns.getattr(f.fid), code('ENOENT'));
    assert.equal(await store.get(K.orphan(f.fid)), undefined);
    assert.equal(await store.get(K.xattr(f.fid, 'user.a')), undefined);
    assert.deepEqual(await ns.counts(), { inodes: 1 });
    await assert.rejects(ns.close(f.fid), code('EBADF'));
  }));

test('closing a file that was never unlinked destroys nothing', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next(), { layout: mkLayout(objects) }));
    const opened = await ns.open(f.fid);
    assert.deepEqual(opened, f);
    assert.deepEqual(await ns.close(f.fid), { destroy: [] });
    assert.ok(await ns.getattr(f.fid));
  }));

test('open of a missing FID is ENOENT and leaves no open count behind', () =>
  withNamespace(async ({ ns, fids }) => {
    const fid = fids.next();
    await assert.rejects(ns.open(fid), code('ENOENT'));
    await assert.rejects(ns.close(fid), code('EBADF'));
    await assert.rejects(ns.open({ seq: 'x' } as never), code('BAD_FID'));
  }));

test('an open file replaced by rename becomes an orphan too', () =>
  withNamespace(async ({ ns, fids }) => {
    const victim = await ns.create(ROOT_FID, 'victim', file(fids.next(), { layout: mkLayout(objects) }));
    await ns.create(ROOT_FID, 'new', file(fids.next()));
    await ns.open(victim.fid);
    const r = await ns.rename(ROOT_FID, 'new', ROOT_FID, 'victim');
    assert.deepEqual(r.replaced?.fid, victim.fid);
    assert.deepEqual(r.destroy, []);
    assert.equal((await ns.getattr(victim.fid)).nlink, 0);
    assert.deepEqual(await ns.close(victim.fid), { destroy: objects });
  }));

test('an open directory that is removed lives until closed', () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    await ns.open(d.fid);
    await ns.unlink(ROOT_FID, 'd', { dir: true });
    assert.equal((await ns.getattr(d.fid)).nlink, 0);
    assert.deepEqual((await ns.readdir(d.fid, 0, 10)).entries, []);
    await ns.close(d.fid);
    await assert.rejects(ns.getattr(d.fid), code('ENOENT'));
  }));

test('a file opened while its unlink is committing is kept: open and unlink are ordered', () =>
  withNamespace(async ({ ns, fids }) => {
    for (let i = 0; i < 20; i++) {
      const f = await ns.create(ROOT_FID, `f${i}`, file(fids.next(), { layout: mkLayout([{ ostIdx: 0, seq: 0x100000000, oid: 100 + i }]) }));
      const [u, o] = await Promise.allSettled([ns.unlink(ROOT_FID, `f${i}`, { dir: false }), ns.open(f.fid)]);
      assert.equal(u.status, 'fulfilled');
      if (o.status === 'fulfilled') {
        // the open came first: the unlink must have kept the inode
        assert.deepEqual(u.value.destroy, []);
        assert.equal((await ns.close(f.fid)).destroy.length, 1);
      } else {
        assert.equal(u.value.destroy.length, 1, 'the unlink came first and destroyed it');
      }
    }
  }));

test('cleanupOrphans at start-up deletes the orphans of the previous run and returns their objects', () =>
  withNamespace(async (fx) => {
    const { ns, fids } = fx;
    const kept = await ns.create(ROOT_FID, 'kept', file(fids.next(), { layout: mkLayout([{ ostIdx: 1, seq: 0x100010000, oid: 1 }]) }));
    const orphaned = [];
    for (let i = 0; i < 5; i++) {
      const f = await ns.create(ROOT_FID, `o${i}`, file(fids.next(), { layout: mkLayout([{ ostIdx: i, seq: 0x100000000 + i * 0x10000, oid: 50 + i }]) }));
      await ns.open(f.fid);
      await ns.unlink(ROOT_FID, `o${i}`, { dir: false });
      orphaned.push(f);
    }
    await ns.open(kept.fid);
    const fresh = await fx.restart();
    const destroy = await fresh.cleanupOrphans();
    assert.deepEqual(
      destroy.sort((a, b) => a.ostIdx - b.ostIdx),
      orphaned.map((f) => f.layout!.objects[0]),
    );
    for (const f of orphaned) await assert.rejects(fresh.getattr(f.fid), code('ENOENT'));
    assert.ok(await fresh.getattr(kept.fid));
    assert.deepEqual(await fresh.cleanupOrphans(), [], 'a second run finds nothing');
    assert.deepEqual(await fresh.counts(), { inodes: 2 });
  }));

test('cleanupOrphans spares orphans that this process still has open', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next(), { layout: mkLayout(objects) }));
    await ns.open(f.fid);
    await ns.unlink(ROOT_FID, 'f', { dir: false });
    assert.deepEqual(await ns.cleanupOrphans(), []);
    assert.ok(await ns.getattr(f.fid));
    assert.deepEqual((await ns.close(f.fid)).destroy, objects);
  }));
