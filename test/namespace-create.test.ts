/** Namespace: root, create, lookup, getattr and the validation of what clients send. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_FID } from '../src/common/fid.js';
import { S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG } from '../src/common/inode.js';
import { compareTime } from '../src/common/time.js';
import { dir, file, mkLayout, withNamespace } from './helpers/namespace-fixture.js';

const code = (c: string) => (e: Error & { code?: string }) => e.code === c;

test('init creates the root directory once: 0755 root:root, nlink 2, its own parent', () =>
  withNamespace(async ({ ns }) => {
    const root = await ns.getattr(ROOT_FID);
    assert.deepEqual(root.fid, ROOT_FID);
    assert.equal(root.type, 'dir');
    assert.equal(root.mode, S_IFDIR | 0o755);
    assert.equal(root.uid, 0);
    assert.equal(root.gid, 0);
    assert.equal(root.nlink, 2);
    assert.deepEqual(root.parent, ROOT_FID);
    await ns.init();
    assert.deepEqual(await ns.getattr(ROOT_FID), root, 'a second init changes nothing');
    assert.deepEqual(await ns.counts(), { inodes: 1 });
  }));

test('create makes files, directories, symlinks and devices that lookup and getattr find', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'file', file(fids.next(), { layout: mkLayout([{ ostIdx: 0, seq: 0x100000000, oid: 5 }]) }));
    assert.equal(f.mode, S_IFREG | 0o644);
    assert.equal(f.nlink, 1);
    assert.equal(f.size, 0);
    assert.equal(f.layout?.objects[0]?.oid, 5);
    const d = await ns.create(ROOT_FID, 'dir', dir(fids.next()));
    assert.equal(d.nlink, 2);
    assert.deepEqual(d.parent, ROOT_FID);
    const l = await ns.create(d.fid, 'link', { fid: fids.next(), type: 'lnk', mode: 0o777, uid: 0, gid: 0, target: '../file' });
    assert.equal(l.mode, S_IFLNK | 0o777);
    assert.equal(l.target, '../file');
    assert.equal(l.size, 7);
    const c = await ns.create(d.fid, 'tty', { fid: fids.next(), type: 'chr', mode: S_IFCHR | 0o620, uid: 0, gid: 5, rdev: 0x0401 });
    assert.equal(c.rdev, 0x0401);
    assert.equal(c.mode, S_IFCHR | 0o620);
    for (const type of ['fifo', 'sock'] as const) await ns.create(d.fid, type, { fid: fids.next(), type, mode: 0o600, uid: 0, gid: 0 });

    assert.deepEqual(await ns.lookup(ROOT_FID, 'file'), f);
    assert.deepEqual(await ns.lookup(d.fid, 'link'), l);
    assert.deepEqual(await ns.getattr(c.fid), c);
    assert.deepEqual(await ns.lookup(d.fid, '.'), await ns.getattr(d.fid));
    assert.deepEqual((await ns.lookup(d.fid, '..')).fid, ROOT_FID);
    assert.deepEqual((await ns.lookup(ROOT_FID, '..')).fid, ROOT_FID);
    assert.equal((await ns.getattr(ROOT_FID)).nlink, 3, 'a subdirectory adds a link to its parent');
    assert.deepEqual(await ns.counts(), { inodes: 7 });
  }));

test("create updates the parent's mtime and ctime", () =>
  withNamespace(async ({ ns, fids }) => {
    const before = await ns.getattr(ROOT_FID);
    await new Promise((r) => setTimeout(r, 5));
    const f = await ns.create(ROOT_FID, 'x', file(fids.next()));
    const after = await ns.getattr(ROOT_FID);
    assert.ok(compareTime(after.mtime, before.mtime) > 0);
    assert.deepEqual(after.mtime, f.ctime);
    assert.deepEqual(after.ctime, f.ctime);
    assert.deepEqual(f.btime, f.ctime);
  }));

test('a taken name is EEXIST, but a resent create with the same FID returns the existing inode', () =>
  withNamespace(async ({ ns, fids }) => {
    const fid = fids.next();
    const first = await ns.create(ROOT_FID, 'a', file(fid));
    const again = await ns.create(ROOT_FID, 'a', file(fid, { mode: 0o600 }));
    assert.deepEqual(again, first, 'the resend changes nothing');
    await assert.rejects(ns.create(ROOT_FID, 'a', file(fids.next())), code('EEXIST'));
    await assert.rejects(ns.create(ROOT_FID, 'b', file(fid)), code('FID_IN_USE'));
    await assert.rejects(ns.create(ROOT_FID, 'c', file(ROOT_FID)), code('FID_IN_USE'));
    assert.deepEqual(await ns.counts(), { inodes: 2 });
  }));

test('lookup and create fail on missing parents, non-directories and missing names', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await assert.rejects(ns.create(f.fid, 'x', file(fids.next())), code('ENOTDIR'));
    await assert.rejects(ns.lookup(f.fid, 'x'), code('ENOTDIR'));
    await assert.rejects(ns.lookup(f.fid, '.'), code('ENOTDIR'));
    await assert.rejects(ns.create(fids.next(), 'x', file(fids.next())), code('ENOENT'));
    await assert.rejects(ns.lookup(ROOT_FID, 'nope'), code('ENOENT'));
    await assert.rejects(ns.getattr(fids.next()), code('ENOENT'));
    await assert.rejects(ns.getattr({ seq: -1, oid: 0, ver: 0 }), code('BAD_FID'));
    await assert.rejects(ns.getattr({ seq: 1.5, oid: 0, ver: 0 } as never), code('BAD_FID'));
    await assert.rejects(ns.getattr(null as never), code('BAD_FID'));
  }));

test('names: 255 bytes is fine, 256 is ENAMETOOLONG; empty, ".", "..", "/" and NUL are EINVAL', () =>
  withNamespace(async ({ ns, fids }) => {
    const long = 'é'.repeat(127) + 'x'; // 255 bytes
    await ns.create(ROOT_FID, long, file(fids.next()));
    assert.equal((await ns.lookup(ROOT_FID, long)).type, 'reg');
    await assert.rejects(ns.create(ROOT_FID, long + 'y', file(fids.next())), code('ENAMETOOLONG'));
    await assert.rejects(ns.lookup(ROOT_FID, 'é'.repeat(128)), code('ENAMETOOLONG'));
    for (const bad of ['', '.', '..', 'a/b', '/', 'a\0b', '\ud800x']) {
      await assert.rejects(ns.create(ROOT_FID, bad, file(fids.next())), code('BAD_NAME'), JSON.stringify(bad));
    }
    await assert.rejects(ns.create(ROOT_FID, 42 as never, file(fids.next())), code('BAD_NAME'));
    const odd = ' \t\n\u0001 spaced, unicode 🚀 名前 ';
    await ns.create(ROOT_FID, odd, file(fids.next()));
    assert.equal((await ns.lookup(ROOT_FID, odd)).type, 'reg');
  }));

test('the create spec is validated: types, modes, ids, targets, layouts', () =>
  withNamespace(async ({ ns, fids }) => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ type: 'weird' }, 'BAD_TYPE'],
      [{ mode: -1 }, 'BAD_MODE'],
      [{ mode: 0o1000000 }, 'BAD_MODE'],
      [{ mode: S_IFDIR | 0o755 }, 'BAD_MODE'],
      [{ mode: '644' }, 'BAD_MODE'],
      [{ uid: -1 }, 'BAD_ID'],
      [{ gid: 2 ** 32 }, 'BAD_ID'],
      [{ target: 'x' }, 'BAD_TARGET'],
      [{ dirDefault: { stripeCount: 2 } }, 'BAD_TEMPLATE'],
      [{ layout: { pattern: 'raid0', stripeSize: 1000, stripeCount: 1, stripeOffset: -1, layoutGen: 0, objects: [] } }, 'BAD_STRIPE_SIZE'],
      [{ layout: mkLayout([{ ostIdx: 0, seq: 1, oid: 1 }], { stripeCount: 2 }) }, 'BAD_LAYOUT'],
      [{ layout: mkLayout([{ ostIdx: 70000, seq: 1, oid: 1 }]) }, 'BAD_LAYOUT'],
      [{ layout: mkLayout([{ ostIdx: 0, seq: 1, oid: 2 ** 32 }]) }, 'BAD_LAYOUT'],
      [{ layout: mkLayout([{ ostIdx: 0, seq: 1, oid: 1 }, { ostIdx: 0, seq: 1, oid: 1 }]) }, 'BAD_LAYOUT'],
      [{ fid: { seq: 1, oid: -1, ver: 0 } }, 'BAD_FID'],
    ];
    for (const [extra, c] of bad) {
      await assert.rejects(ns.create(ROOT_FID, 'x', file(fids.next(), extra)), code(c), JSON.stringify(extra));
    }
    await assert.rejects(ns.create(ROOT_FID, 'l', { fid: fids.next(), type: 'lnk', mode: 0o777, uid: 0, gid: 0 }), code('ENOENT'));
    await assert.rejects(
      ns.create(ROOT_FID, 'l', { fid: fids.next(), type: 'lnk', mode: 0o777, uid: 0, gid: 0, target: 'x'.repeat(4096) }),
      code('ENAMETOOLONG'),
    );
    await assert.rejects(ns.create(ROOT_FID, 'd', dir(fids.next(), { layout: mkLayout([{ ostIdx: 0, seq: 1, oid: 1 }]) })), code('BAD_LAYOUT'));
    await assert.rejects(ns.create(ROOT_FID, 'c', { fid: fids.next(), type: 'chr', mode: 0o600, uid: 0, gid: 0, rdev: -3 }), code('BAD_RDEV'));
    assert.deepEqual(await ns.counts(), { inodes: 1 }, 'nothing was created');
    const withType = await ns.create(ROOT_FID, 'typed', file(fids.next(), { mode: S_IFREG | 0o4755 }));
    assert.equal(withType.mode, S_IFREG | 0o4755, 'setuid and matching type bits are kept');
  }));

test('a setgid directory gives new entries its group, and new directories its setgid bit', () =>
  withNamespace(async ({ ns, fids }) => {
    const shared = await ns.create(ROOT_FID, 'shared', dir(fids.next(), { mode: 0o2775, gid: 500 }));
    assert.equal(shared.mode, S_IFDIR | 0o2775);
    const f = await ns.create(shared.fid, 'f', file(fids.next(), { gid: 1000 }));
    assert.equal(f.gid, 500);
    assert.equal(f.mode & 0o2000, 0, 'files do not get setgid');
    const sub = await ns.create(shared.fid, 'sub', dir(fids.next(), { mode: 0o755, gid: 1000 }));
    assert.equal(sub.gid, 500);
    assert.equal(sub.mode, S_IFDIR | 0o2755);
    const plain = await ns.create(ROOT_FID, 'plain', dir(fids.next(), { gid: 1000 }));
    assert.equal(plain.gid, 1000);
    assert.equal(plain.mode & 0o2000, 0);
  }));

test('nothing can be created in a directory that has been removed', () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'gone', dir(fids.next()));
    await ns.open(d.fid);
    await ns.unlink(ROOT_FID, 'gone', { dir: true });
    await assert.rejects(ns.create(d.fid, 'late', file(fids.next())), code('ENOENT'));
    await ns.close(d.fid);
  }));
