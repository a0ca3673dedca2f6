/** Namespace: setattr, setLayout and setDirDefault. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_FID } from '../src/common/fid.js';
import { S_IFDIR, S_IFREG } from '../src/common/inode.js';
import { compareTime } from '../src/common/time.js';
import { dir, file, mkLayout, withNamespace } from './helpers/namespace-fixture.js';

const code = (c: string) => (e: Error & { code?: string }) => e.code === c;

test('setattr changes mode (keeping the type bits), owner, size and times; ctime moves unless given', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await new Promise((r) => setTimeout(r, 2));
    const a = await ns.setattr(f.fid, { mode: S_IFDIR | 0o4700 });
    assert.equal(a.mode, S_IFREG | 0o4700, 'type bits cannot change');
    assert.ok(compareTime(a.ctime, f.ctime) > 0);
    const b = await ns.setattr(f.fid, { uid: 7, gid: 8, size: 12345 });
    assert.equal(b.uid, 7);
    assert.equal(b.gid, 8);
    assert.equal(b.size, 12345);
    const when = { sec: 1_000_000_000, nsec: 123_456_789 };
    const c = await ns.setattr(f.fid, { atime: when, mtime: when });
    assert.deepEqual(c.atime, when);
    assert.deepEqual(c.mtime, when);
    assert.ok(compareTime(c.ctime, b.ctime) >= 0);
    const d = await ns.setattr(f.fid, { mode: 0o600, ctime: when });
    assert.deepEqual(d.ctime, when, 'an explicit ctime wins');
    assert.deepEqual(await ns.getattr(f.fid), d);
    const same = await ns.setattr(f.fid, {});
    assert.deepEqual(same, d, 'no attributes, no change');
  }));

test('setattr refuses sizes on directories and special files, and bad values', () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    const l = await ns.create(ROOT_FID, 'l', { fid: fids.next(), type: 'lnk', mode: 0o777, uid: 0, gid: 0, target: 't' });
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await assert.rejects(ns.setattr(d.fid, { size: 0 }), code('EISDIR'));
    await assert.rejects(ns.setattr(l.fid, { size: 0 }), code('EINVAL'));
    await assert.rejects(ns.setattr(f.fid, { size: -1 }), code('BAD_SIZE'));
    await assert.rejects(ns.setattr(f.fid, { size: 2 ** 53 }), code('BAD_SIZE'));
    await assert.rejects(ns.setattr(f.fid, { mode: 0o1000000 }), code('BAD_MODE'));
    await assert.rejects(ns.setattr(f.fid, { uid: 2 ** 32 }), code('BAD_ID'));
    await assert.rejects(ns.setattr(f.fid, { mtime: { sec: 1, nsec: 1e9 } }), code('BAD_TIME'));
    await assert.rejects(ns.setattr(f.fid, { atime: { sec: 'x' } as never }), code('BAD_TIME'));
    await assert.rejects(ns.setattr(fids.next(), { uid: 1 }), code('ENOENT'));
    await assert.rejects(ns.setattr(f.fid, null as never), code('EINVAL'));
    assert.deepEqual(await ns.getattr(f.fid), f, 'nothing changed');
  }));

test('setLayout sets the layout of a regular file only', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    const layout = mkLayout([{ ostIdx: 1, seq: 0x100010000, oid: 4 }], { pool: 'fast', layoutGen: 3 });
    const withLayout = await ns.setLayout(f.fid, layout);
    assert.deepEqual(withLayout.layout, layout);
    const released = await ns.setLayout(f.fid, mkLayout([], { pattern: 'released', stripeCount: 1, layoutGen: 4 }));
    assert.equal(released.layout?.pattern, 'released');
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    await assert.rejects(ns.setLayout(d.fid, layout), code('EISDIR'));
    const l = await ns.create(ROOT_FID, 'l', { fid: fids.next(), type: 'lnk', mode: 0o777, uid: 0, gid: 0, target: 't' });
    await assert.rejects(ns.setLayout(l.fid, layout), code('EINVAL'));
    await assert.rejects(ns.setLayout(f.fid, { ...layout, pool: 'ignore' }), code('BAD_POOL_NAME'));
    await assert.rejects(ns.setLayout(f.fid, { ...layout, pattern: 'raid6' } as never), code('BAD_LAYOUT'));
  }));

test('setDirDefault stores a normalised template on directories and removes it with undefined', () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    const set = await ns.setDirDefault(d.fid, { stripeSize: 1 << 20, stripeCount: 0, stripeOffset: -1, pool: 'inherit' });
    assert.deepEqual(set.dirDefault, { stripeSize: 1 << 20 }, 'defaults are dropped: absent means inherited');
    const set2 = await ns.setDirDefault(d.fid, { stripeCount: -1, stripeOffset: 2, pool: 'flash' });
    assert.deepEqual(set2.dirDefault, { stripeCount: -1, stripeOffset: 2, pool: 'flash' });
    const cleared = await ns.setDirDefault(d.fid, undefined);
    assert.equal(cleared.dirDefault, undefined);
    assert.equal('dirDefault' in (await ns.getattr(d.fid)), false);
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await assert.rejects(ns.setDirDefault(f.fid, { stripeCount: 2 }), code('ENOTDIR'));
    for (const bad of [{ stripeSize: 1000 }, { stripeCount: 5000 }, { stripeOffset: -2 }, { pool: 'x'.repeat(16) }, { pool: 'bad name' }]) {
      await assert.rejects(ns.setDirDefault(d.fid, bad), (e: Error) => e.name === 'StriaError', JSON.stringify(bad));
    }
  }));
