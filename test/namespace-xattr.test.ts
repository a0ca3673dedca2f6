/** Namespace: extended attributes, including the computed lustre.lov. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Errno } from '../src/common/errno.js';
import { ROOT_FID } from '../src/common/fid.js';
import { LOV_USER_MAGIC_V1, LOV_USER_MAGIC_V3 } from '../src/common/layout.js';
import { compareTime } from '../src/common/time.js';
import { encodeLovEA, encodeLovTemplate } from '../src/mds/lov-xattr.js';
import { XATTR_SIZE_MAX } from '../src/mds/namespace.js';
import { dir, file, mkLayout, withNamespace } from './helpers/namespace-fixture.js';

const code = (c: string) => (e: Error & { code?: string }) => e.code === c;

function lovUser(opts: { magic?: number; size?: number; count?: number; offset?: number; pool?: string; length?: number } = {}): Buffer {
  const v3 = opts.pool !== undefined || opts.magic === LOV_USER_MAGIC_V3;
  const b = Buffer.alloc(opts.length ?? (v3 ? 48 : 32));
  b.writeUInt32LE(opts.magic ?? (v3 ? LOV_USER_MAGIC_V3 : LOV_USER_MAGIC_V1), 0);
  b.writeUInt32LE(1, 4);
  b.writeUInt32LE(opts.size ?? 0, 24);
  b.writeUInt16LE(opts.count ?? 0, 28);
  b.writeUInt16LE(opts.offset ?? 0xffff, 30);
  if (opts.pool) b.write(opts.pool, 32, 'latin1');
  return b;
}

test('user, trusted and security xattrs: set, get, list, replace, remove', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await ns.setxattr(f.fid, 'user.color', Buffer.from('blue'), {});
    await ns.setxattr(f.fid, 'trusted.t', Buffer.from([0, 1, 2]), {});
    await ns.setxattr(f.fid, 'security.selinux', Buffer.from('ctx\0'), {});
    await ns.setxattr(f.fid, 'user.empty', Buffer.alloc(0), {});
    assert.deepEqual(await ns.getxattr(f.fid, 'user.color'), Buffer.from('blue'));
    assert.deepEqual(await ns.getxattr(f.fid, 'trusted.t'), Buffer.from([0, 1, 2]));
    assert.deepEqual(await ns.getxattr(f.fid, 'user.empty'), Buffer.alloc(0));
    assert.deepEqual((await ns.listxattr(f.fid)).sort(), ['security.selinux', 'trusted.t', 'user.color', 'user.empty']);
    await ns.setxattr(f.fid, 'user.color', Buffer.from('green'), {});
    assert.deepEqual(await ns.getxattr(f.fid, 'user.color'), Buffer.from('green'));
    await ns.removexattr(f.fid, 'user.color');
    await assert.rejects(ns.getxattr(f.fid, 'user.color'), code('ENODATA'));
    await assert.rejects(ns.removexattr(f.fid, 'user.color'), code('ENODATA'));
    assert.deepEqual((await ns.listxattr(f.fid)).sort(), ['security.selinux', 'trusted.t', 'user.empty']);
  }));

test('create and replace flags', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await assert.rejects(ns.setxattr(f.fid, 'user.a', Buffer.from('1'), { replace: true }), code('ENODATA'));
    await ns.setxattr(f.fid, 'user.a', Buffer.from('1'), { create: true });
    await assert.rejects(ns.setxattr(f.fid, 'user.a', Buffer.from('2'), { create: true }), code('EEXIST'));
    await ns.setxattr(f.fid, 'user.a', Buffer.from('3'), { replace: true });
    assert.deepEqual(await ns.getxattr(f.fid, 'user.a'), Buffer.from('3'));
    await assert.rejects(ns.setxattr(f.fid, 'user.a', Buffer.from('4'), { create: true, replace: true }), code('EINVAL'));
  }));

test('xattr names and values are validated', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await ns.setxattr(f.fid, 'user.' + 'n'.repeat(250), Buffer.from('x'), {});
    await assert.rejects(ns.setxattr(f.fid, 'user.' + 'n'.repeat(251), Buffer.from('x'), {}), code('ERANGE'));
    await assert.rejects(ns.getxattr(f.fid, 'user.' + 'n'.repeat(251)), code('ERANGE'));
    await ns.setxattr(f.fid, 'user.max', Buffer.alloc(XATTR_SIZE_MAX, 1), {});
    await assert.rejects(ns.setxattr(f.fid, 'user.big', Buffer.alloc(XATTR_SIZE_MAX + 1), {}), code('E2BIG'));
    for (const bad of ['', 'user.', 'noprefix', '.x', 'user.a\0b']) {
      await assert.rejects(ns.setxattr(f.fid, bad, Buffer.from('x'), {}), code('BAD_XATTR_NAME'), JSON.stringify(bad));
    }
    await assert.rejects(ns.setxattr(f.fid, 'user.s', 'string' as never, {}), code('EINVAL'));
    await assert.rejects(ns.setxattr(f.fid, 'os2.x', Buffer.from('x'), {}), code('EOPNOTSUPP'));
    await assert.rejects(ns.setxattr(f.fid, 'system.posix_acl_access', Buffer.from('x'), {}), code('EOPNOTSUPP'));
    await assert.rejects(ns.getxattr(f.fid, 'system.posix_acl_access'), code('ENODATA'), 'no ACLs are stored');
    await assert.rejects(ns.getxattr(f.fid, 'os2.x'), code('EOPNOTSUPP'));
    await assert.rejects(ns.setxattr(fids.next(), 'user.a', Buffer.from('x'), {}), code('ENOENT'));
  }));

test('user xattrs only on files and directories; trusted ones anywhere', () =>
  withNamespace(async ({ ns, fids }) => {
    const l = await ns.create(ROOT_FID, 'l', { fid: fids.next(), type: 'lnk', mode: 0o777, uid: 0, gid: 0, target: 't' });
    await assert.rejects(ns.setxattr(l.fid, 'user.a', Buffer.from('x'), {}), code('EPERM'));
    await ns.setxattr(l.fid, 'trusted.a', Buffer.from('x'), {});
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    await ns.setxattr(d.fid, 'user.a', Buffer.from('x'), {});
  }));

test('setting and removing xattrs moves ctime', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await new Promise((r) => setTimeout(r, 2));
    await ns.setxattr(f.fid, 'user.a', Buffer.from('x'), {});
    const a = await ns.getattr(f.fid);
    assert.ok(compareTime(a.ctime, f.ctime) > 0);
    await new Promise((r) => setTimeout(r, 2));
    await ns.removexattr(f.fid, 'user.a');
    assert.ok(compareTime((await ns.getattr(f.fid)).ctime, a.ctime) > 0);
  }));

test('an inode holds a bounded amount of xattrs: ENOSPC beyond it', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    let stored = 0;
    for (let i = 0; i < 17; i++) {
      try {
        await ns.setxattr(f.fid, `user.v${i}`, Buffer.alloc(XATTR_SIZE_MAX, i), {});
        stored++;
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'ENOSPC');
      }
    }
    assert.equal(stored, 16, '1 MiB of values');
    await ns.setxattr(f.fid, 'user.v0', Buffer.alloc(10), {}); // shrinking frees room
    await ns.setxattr(f.fid, 'user.more', Buffer.alloc(1000), {});

    const g = await ns.create(ROOT_FID, 'g', file(fids.next()));
    let names = 0;
    for (let i = 0; i < 400; i++) {
      try {
        await ns.setxattr(g.fid, `user.${String(i).padStart(3, '0')}${'n'.repeat(245)}`, Buffer.from('x'), {});
        names++;
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'ENOSPC');
        break;
      }
    }
    assert.ok(names > 200 && names <= Math.floor(65536 / 254), `name list bounded by 64 KiB (${names} names)`);
    const listed = await ns.listxattr(g.fid);
    assert.equal(listed.length, names);
    assert.ok(listed.reduce((n, s) => n + Buffer.byteLength(s) + 1, 0) <= 65536);
  }));

test('lustre.lov of a file is its layout, encoded; it cannot be removed, and setting it on a striped file is ignored', () =>
  withNamespace(async ({ ns, fids }) => {
    const layout = mkLayout([{ ostIdx: 2, seq: 0x100020000, oid: 77 }]);
    const f = await ns.create(ROOT_FID, 'f', file(fids.next(), { layout }));
    const lov = await ns.getxattr(f.fid, 'lustre.lov');
    assert.deepEqual(lov, encodeLovEA(layout, f.fid));
    assert.deepEqual(await ns.getxattr(f.fid, 'trusted.lov'), lov);
    assert.deepEqual(await ns.listxattr(f.fid), ['lustre.lov']);
    await ns.setxattr(f.fid, 'lustre.lov', lovUser({ count: 4, size: 1 << 20 }), {});
    assert.deepEqual((await ns.getattr(f.fid)).layout, layout, 'the existing layout stays');
    await assert.rejects(ns.removexattr(f.fid, 'lustre.lov'), code('EPERM'));
    await assert.rejects(ns.setxattr(f.fid, 'lustre.lov', Buffer.from('junk'), {}), code('BAD_LOV_MD'));

    const bare = await ns.create(ROOT_FID, 'bare', file(fids.next()));
    await assert.rejects(ns.getxattr(bare.fid, 'lustre.lov'), code('ENODATA'));
    assert.deepEqual(await ns.listxattr(bare.fid), []);
    await assert.rejects(ns.setxattr(bare.fid, 'lustre.lov', lovUser({ count: 1 }), {}), code('EOPNOTSUPP'));
  }));

test("lustre.lov on a directory reads and sets its default layout (lfs setstripe / getstripe -d)", () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    await assert.rejects(ns.getxattr(d.fid, 'lustre.lov'), code('ENODATA'));
    assert.deepEqual(await ns.listxattr(d.fid), []);
    await assert.rejects(ns.setxattr(d.fid, 'lustre.lov', lovUser({ count: 2 }), { replace: true }), code('ENODATA'));

    await ns.setxattr(d.fid, 'lustre.lov', lovUser({ size: 2 << 20, count: 2 }), {});
    assert.deepEqual((await ns.getattr(d.fid)).dirDefault, { stripeSize: 2 << 20, stripeCount: 2 });
    assert.deepEqual(await ns.getxattr(d.fid, 'lustre.lov'), encodeLovTemplate({ stripeSize: 2 << 20, stripeCount: 2 }));
    assert.deepEqual(await ns.listxattr(d.fid), ['lustre.lov']);
    await assert.rejects(ns.setxattr(d.fid, 'lustre.lov', lovUser({ count: 3 }), { create: true }), code('EEXIST'));

    await ns.setxattr(d.fid, 'trusted.lov', lovUser({ count: 0xffff, offset: 3, pool: 'flash' }), {});
    assert.deepEqual((await ns.getattr(d.fid)).dirDefault, { stripeCount: -1, stripeOffset: 3, pool: 'flash' });
    const v3 = await ns.getxattr(d.fid, 'lustre.lov');
    assert.equal(v3.readUInt32LE(0), LOV_USER_MAGIC_V3);

    await ns.setxattr(d.fid, 'lustre.lov', lovUser({}), {});
    assert.equal((await ns.getattr(d.fid)).dirDefault, undefined, 'an all-default template removes it');

    await ns.setxattr(d.fid, 'lustre.lov', lovUser({ count: 4 }), {});
    await ns.removexattr(d.fid, 'lustre.lov');
    assert.equal((await ns.getattr(d.fid)).dirDefault, undefined);
    await assert.rejects(ns.removexattr(d.fid, 'lustre.lov'), code('ENODATA'));

    const bads = [Buffer.alloc(10), lovUser({ magic: 0x12345678 }), lovUser({ size: 1000 }), lovUser({ count: 3000 }), lovUser({ pool: 'bad pool' })];
    for (const bad of bads) {
      await assert.rejects(ns.setxattr(d.fid, 'lustre.lov', bad, {}), (e: Error & { errno?: number }) => e.errno === Errno.EINVAL);
    }
    assert.equal((await ns.getattr(d.fid)).dirDefault, undefined, 'no bad blob changed anything');
  }));

test('xattrs survive a restart', () =>
  withNamespace(async (fx) => {
    const f = await fx.ns.create(ROOT_FID, 'f', file(fx.fids.next()));
    await fx.ns.setxattr(f.fid, 'user.keep', Buffer.from('me'), {});
    const ns = await fx.restart();
    assert.deepEqual(await ns.getxattr(f.fid, 'user.keep'), Buffer.from('me'));
    assert.deepEqual(await ns.listxattr(f.fid), ['user.keep']);
  }));
