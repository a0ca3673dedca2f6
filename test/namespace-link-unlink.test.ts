/** Namespace: hard links, unlink and rmdir. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_FID } from '../src/common/fid.js';
import { K } from '../src/mds/keys.js';
import { dir, file, mkLayout, withNamespace } from './helpers/namespace-fixture.js';

const code = (c: string) => (e: Error & { code?: string }) => e.code === c;
const objs = [
  { ostIdx: 0, seq: 0x100000000, oid: 7 },
  { ostIdx: 1, seq: 0x100010000, oid: 9 },
];

test('link adds a name and a link, updates ctime; both names reach the same inode', () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await new Promise((r) => setTimeout(r, 2));
    const linked = await ns.link(f.fid, d.fid, 'g');
    assert.equal(linked.nlink, 2);
    assert.notDeepEqual(linked.ctime, f.ctime);
    assert.deepEqual((await ns.lookup(d.fid, 'g')).fid, f.fid);
    assert.deepEqual(await ns.lookup(ROOT_FID, 'f'), await ns.lookup(d.fid, 'g'));
    assert.deepEqual((await ns.getattr(d.fid)).mtime, linked.ctime);
  }));

test('link refuses directories, taken names, non-directory parents and unlinked inodes', () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await assert.rejects(ns.link(d.fid, ROOT_FID, 'd2'), code('EPERM'));
    await assert.rejects(ns.link(f.fid, ROOT_FID, 'd'), code('EEXIST'));
    await assert.rejects(ns.link(f.fid, f.fid, 'x'), code('ENOTDIR'));
    await assert.rejects(ns.link(fids.next(), ROOT_FID, 'x'), code('ENOENT'));
    await assert.rejects(ns.link(f.fid, ROOT_FID, 'a/b'), code('BAD_NAME'));
    await ns.open(f.fid);
    await ns.unlink(ROOT_FID, 'f', { dir: false });
    await assert.rejects(ns.link(f.fid, ROOT_FID, 'back'), code('ENOENT'), 'an open-unlinked file cannot be linked back');
    await ns.close(f.fid);
  }));

test('unlink drops one link; the last one deletes the inode and hands back its objects', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next(), { layout: mkLayout(objs) }));
    await ns.setxattr(f.fid, 'user.k', Buffer.from('v'), {});
    await ns.link(f.fid, ROOT_FID, 'g');
    const first = await ns.unlink(ROOT_FID, 'f', { dir: false });
    assert.equal(first.inode.nlink, 1);
    assert.deepEqual(first.destroy, []);
    assert.deepEqual((await ns.lookup(ROOT_FID, 'g')).nlink, 1);
    await assert.rejects(ns.lookup(ROOT_FID, 'f'), code('ENOENT'));
    const last = await ns.unlink(ROOT_FID, 'g', { dir: false });
    assert.equal(last.inode.nlink, 0);
    assert.deepEqual(last.destroy, objs);
    await assert.rejects(ns.getattr(f.fid), code('ENOENT'));
    assert.equal(await store.get(K.xattr(f.fid, 'user.k')), undefined, 'xattrs go with the inode');
    assert.equal(await store.get(K.xattrList(f.fid)), undefined);
    assert.deepEqual(await ns.counts(), { inodes: 1 });
  }));

test('unlink of a file without objects, a symlink, a device returns nothing to destroy', () =>
  withNamespace(async ({ ns, fids }) => {
    await ns.create(ROOT_FID, 'empty', file(fids.next()));
    await ns.create(ROOT_FID, 'sym', { fid: fids.next(), type: 'lnk', mode: 0o777, uid: 0, gid: 0, target: 't' });
    await ns.create(ROOT_FID, 'released', file(fids.next(), { layout: mkLayout([], { pattern: 'released', stripeCount: 2 }) }));
    for (const n of ['empty', 'sym', 'released']) assert.deepEqual((await ns.unlink(ROOT_FID, n, { dir: false })).destroy, [], n);
  }));

test('rmdir removes empty directories only and fixes the parent link count', () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    const sub = await ns.create(d.fid, 'sub', dir(fids.next()));
    await ns.create(sub.fid, 'f', file(fids.next()));
    assert.equal((await ns.getattr(d.fid)).nlink, 3);
    await assert.rejects(ns.unlink(d.fid, 'sub', { dir: true }), code('ENOTEMPTY'));
    await ns.unlink(sub.fid, 'f', { dir: false });
    const r = await ns.unlink(d.fid, 'sub', { dir: true });
    assert.equal(r.inode.nlink, 0);
    assert.deepEqual(r.destroy, []);
    assert.equal((await ns.getattr(d.fid)).nlink, 2);
    await assert.rejects(ns.getattr(sub.fid), code('ENOENT'));
    await ns.unlink(ROOT_FID, 'd', { dir: true });
    assert.equal((await ns.getattr(ROOT_FID)).nlink, 2);
  }));

test('unlink and rmdir give the errno POSIX does for the wrong kind of entry', () =>
  withNamespace(async ({ ns, fids }) => {
    await ns.create(ROOT_FID, 'd', dir(fids.next()));
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await assert.rejects(ns.unlink(ROOT_FID, 'd', { dir: false }), code('EISDIR'));
    await assert.rejects(ns.unlink(ROOT_FID, 'f', { dir: true }), code('ENOTDIR'));
    await assert.rejects(ns.unlink(ROOT_FID, 'nope', { dir: false }), code('ENOENT'));
    await assert.rejects(ns.unlink(f.fid, 'x', { dir: false }), code('ENOTDIR'));
    await assert.rejects(ns.unlink(ROOT_FID, '.', { dir: true }), code('EINVAL'));
    await assert.rejects(ns.unlink(ROOT_FID, '..', { dir: true }), code('ENOTEMPTY'));
    await assert.rejects(ns.unlink(ROOT_FID, '.', { dir: false }), code('EISDIR'));
    await assert.rejects(ns.unlink(ROOT_FID, '', { dir: false }), code('BAD_NAME'));
  }));

test('unlink updates the parent times and the surviving inode ctime', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await ns.link(f.fid, ROOT_FID, 'g');
    await new Promise((r) => setTimeout(r, 2));
    const r = await ns.unlink(ROOT_FID, 'f', { dir: false });
    const root = await ns.getattr(ROOT_FID);
    assert.deepEqual(root.mtime, r.inode.ctime);
    assert.deepEqual(root.ctime, r.inode.ctime);
    assert.deepEqual((await ns.getattr(f.fid)).ctime, r.inode.ctime);
  }));

test('a name can be reused after unlink, with a new inode', () =>
  withNamespace(async ({ ns, fids }) => {
    const a = await ns.create(ROOT_FID, 'n', file(fids.next()));
    await ns.unlink(ROOT_FID, 'n', { dir: false });
    const b = await ns.create(ROOT_FID, 'n', dir(fids.next()));
    assert.notDeepEqual(a.fid, b.fid);
    assert.equal((await ns.lookup(ROOT_FID, 'n')).type, 'dir');
  }));
