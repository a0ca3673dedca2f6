/** MDT handlers refuse malformed bodies and unknown FIDs with clear errors and change nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withNamespace } from './helpers/namespace-fixture.js';
import { MdtTarget } from '../src/mds/mdt-target.js';
import { ObjectAllocator } from '../src/mds/lod.js';
import { silentLogger } from '../src/common/log.js';
import { StriaError } from '../src/common/errno.js';
import { ROOT_FID } from '../src/common/fid.js';
import { Opc, ReintOp } from '../src/ptlrpc/opcodes.js';
import type { RequestContext, ServerExport } from '../src/ptlrpc/types.js';

const exp: ServerExport = {
  target: 'testfs-MDT0000', clientUuid: 'u', peer: 'test', handle: 1, connCnt: 1, connected: true, data: new Map(),
  request: () => Promise.reject(new Error('no callbacks in this test')),
};

function ctx(opc: number, body: unknown): RequestContext {
  return { opc, xid: 1, flags: 0, body, bulk: undefined, uid: 0, gid: 0, jobid: '', export: exp };
}

const MISSING = { seq: 0x200000400, oid: 0xdead, ver: 0 };

const badCases: Array<[string, number, unknown, string]> = [
  ['getattr without fid', Opc.MDS_GETATTR, {}, 'BAD_REQUEST'],
  ['getattr with a string fid', Opc.MDS_GETATTR, { fid: 'root' }, 'BAD_REQUEST'],
  ['getattr with a negative oid', Opc.MDS_GETATTR, { fid: { seq: 1, oid: -1, ver: 0 } }, 'BAD_REQUEST'],
  ['getattr of a FID that does not exist', Opc.MDS_GETATTR, { fid: MISSING }, 'ENOENT'],
  ['lookup in a missing directory', Opc.MDS_GETATTR_NAME, { parent: MISSING, name: 'x' }, 'ENOENT'],
  ['lookup with a number as name', Opc.MDS_GETATTR_NAME, { parent: ROOT_FID, name: 7 }, 'BAD_REQUEST'],
  ['readpage with a huge limit', Opc.MDS_READPAGE, { fid: ROOT_FID, cookie: 0, limit: 1e9 }, 'BAD_REQUEST'],
  ['reint with an unknown op', Opc.MDS_REINT, { op: 99 }, 'BAD_REQUEST'],
  ['reint as an array', Opc.MDS_REINT, [1, 2, 3], 'BAD_REQUEST'],
  ['create with a reserved FID sequence', Opc.MDS_REINT, { op: ReintOp.CREATE, parent: ROOT_FID, name: 'a', fid: { seq: 5, oid: 1, ver: 0 }, type: 'dir', mode: 0o755, uid: 0, gid: 0 }, 'BAD_FID'],
  ['create in a missing parent', Opc.MDS_REINT, { op: ReintOp.CREATE, parent: MISSING, name: 'a', fid: { seq: 0x200000400, oid: 1, ver: 0 }, type: 'dir', mode: 0o755, uid: 0, gid: 0 }, 'ENOENT'],
  ['create with an unknown type', Opc.MDS_REINT, { op: ReintOp.CREATE, parent: ROOT_FID, name: 'a', fid: { seq: 0x200000400, oid: 1, ver: 0 }, type: 'door', mode: 0o755, uid: 0, gid: 0 }, 'BAD_REQUEST'],
  ['create with a 256-byte name', Opc.MDS_REINT, { op: ReintOp.CREATE, parent: ROOT_FID, name: 'x'.repeat(256), fid: { seq: 0x200000400, oid: 2, ver: 0 }, type: 'dir', mode: 0o755, uid: 0, gid: 0 }, 'ENAMETOOLONG'],
  ['a regular file with no OST to hold it', Opc.MDS_REINT, { op: ReintOp.CREATE, parent: ROOT_FID, name: 'f', fid: { seq: 0x200000400, oid: 3, ver: 0 }, type: 'reg', mode: 0o644, uid: 0, gid: 0 }, 'NO_OST_AVAILABLE'],
  ['unlink of a missing name', Opc.MDS_REINT, { op: ReintOp.UNLINK, parent: ROOT_FID, name: 'nope', dir: false }, 'ENOENT'],
  ['rename with a missing source', Opc.MDS_REINT, { op: ReintOp.RENAME, srcParent: ROOT_FID, srcName: 'nope', dstParent: ROOT_FID, dstName: 'x' }, 'ENOENT'],
  ['setattr with a string mode', Opc.MDS_REINT, { op: ReintOp.SETATTR, fid: ROOT_FID, attrs: { mode: '777' } }, 'BAD_REQUEST'],
  ['setattr with nsec out of range', Opc.MDS_REINT, { op: ReintOp.SETATTR, fid: ROOT_FID, attrs: { mtime: { sec: 1, nsec: 2e9 } } }, 'BAD_REQUEST'],
  ['setxattr with a string value', Opc.MDS_REINT, { op: ReintOp.SETXATTR, fid: ROOT_FID, name: 'user.a', value: 'text' }, 'BAD_REQUEST'],
  ['close of a handle never opened', Opc.MDS_CLOSE, { fid: ROOT_FID, handle: 42 }, 'BAD_HANDLE'],
  ['dir default with a bad stripe size', Opc.MDS_SET_INFO, { key: 'dir_default', fid: ROOT_FID, template: { stripeSize: 1000 } }, 'BAD_STRIPE_SIZE'],
];

test('malformed and impossible MDT requests get clear errors and change nothing', async () => {
  await withNamespace(async ({ ns, store, dir }) => {
    const target = new MdtTarget(ns, new ObjectAllocator(), { fsname: 'testfs', index: 0, storeDir: dir, fsDefault: { stripeSize: 4 << 20, stripeCount: 1 } }, silentLogger());
    const dump = async () => JSON.stringify(await store.scan('', undefined, 100000));
    const before = await dump();
    for (const [what, opc, body, code] of badCases) {
      const handler = target.handlers.get(opc)!;
      await assert.rejects(
        Promise.resolve().then(() => handler(ctx(opc, body))),
        (e: unknown) => e instanceof StriaError && e.code === code,
        `${what}: expected ${code}`,
      );
    }
    assert.equal(await dump(), before, 'the store is byte-for-byte unchanged');
  });
});

test('a connect for another filesystem is refused', async () => {
  await withNamespace(async ({ ns, dir }) => {
    const target = new MdtTarget(ns, new ObjectAllocator(), { fsname: 'testfs', index: 0, storeDir: dir, fsDefault: { stripeSize: 4 << 20, stripeCount: 1 } }, silentLogger());
    assert.throws(() => target.onConnect(exp, { fsname: 'other' }), (e: unknown) => e instanceof StriaError && e.code === 'WRONG_FILESYSTEM');
    assert.throws(() => target.onConnect(exp, 'junk'), (e: unknown) => e instanceof StriaError && e.code === 'BAD_REQUEST');
  });
});
