/**
 * The OST request handlers, called the way the RPC layer calls them (a
 * RequestContext per request) over a real object store in a temp directory.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, StriaError } from '../src/common/errno.js';
import { idifSeq } from '../src/common/fid.js';
import { silentLogger } from '../src/common/log.js';
import { mdtName, ostName } from '../src/common/targets.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import type { ReplyPayload, RequestContext, ServerExport } from '../src/ptlrpc/types.js';
import { ObjectStore } from '../src/oss/objstore.js';
import { createOstTarget, type OstTarget } from '../src/oss/ost-target.js';
import { ObjAttrReply, OstCreateReply, StatFsReply } from '../src/oss/protocol.js';

const INDEX = 10;
const SEQ = idifSeq(INDEX);
let root: string;
let store: ObjectStore;
let target: OstTarget;
let xid = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'stria-ost-handlers-'));
  store = await ObjectStore.open(root, { fsname: 'testfs', index: INDEX });
  target = createOstTarget(store, silentLogger());
});

after(async () => {
  await store?.close();
  await rm(root, { recursive: true, force: true });
});

function context(opc: number, body: unknown, bulk?: Buffer): RequestContext {
  return { opc, xid: ++xid, flags: 0, body, bulk, uid: 0, gid: 0, jobid: 'test.0', export: undefined };
}

async function call(opc: number, body: unknown, bulk?: Buffer): Promise<ReplyPayload> {
  const handler = target.handlers.get(opc);
  assert.ok(handler, `a handler for opcode ${opc}`);
  return (await handler(context(opc, body, bulk))) ?? {};
}

/** A server export as the RPC layer hands it to onConnect; this target never calls back. */
function serverExport(): ServerExport {
  return {
    target: target.name,
    clientUuid: 'testfs-MDT0000-mdtlov_UUID',
    peer: '127.0.0.1:40000',
    handle: 1,
    connCnt: 1,
    connected: true,
    data: new Map(),
    request: () => Promise.reject(new Error('no callbacks expected')),
  };
}

async function rejectsWith(p: Promise<unknown> | (() => unknown), errno: keyof typeof Errno, code: string): Promise<void> {
  await assert.rejects(async () => (typeof p === 'function' ? p() : p), (e: unknown) => {
    assert.ok(e instanceof StriaError, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.errno, Errno[errno], e.message);
    return true;
  });
}

test('target names print the index as 4 lowercase hex digits', () => {
  assert.equal(ostName('testfs', 10), 'testfs-OST000a');
  assert.equal(ostName('testfs', 0x1234), 'testfs-OST1234');
  assert.equal(mdtName('testfs', 0), 'testfs-MDT0000');
  assert.equal(target.name, 'testfs-OST000a');
});

test('connect returns the target identity and refuses another filesystem', async () => {
  assert.ok(target.onConnect);
  const reply = (await target.onConnect(serverExport(), { fsname: 'testfs' })) as { grant?: number };
  assert.ok(typeof reply.grant === 'number' && reply.grant >= 0 && reply.grant % 4096 === 0, 'a grant of whole pages');
  assert.deepEqual({ ...reply, grant: undefined }, { index: INDEX, fsname: 'testfs', uuid: 'testfs-OST000a_UUID', grant: undefined });
  await rejectsWith(() => target.onConnect!(serverExport(), { fsname: 'otherfs' }), 'EINVAL', 'WRONG_FILESYSTEM');
  await rejectsWith(() => target.onConnect!(serverExport(), undefined), 'EINVAL', 'BAD_REQUEST');
  await rejectsWith(() => target.onConnect!(serverExport(), { fsname: 12 }), 'EINVAL', 'BAD_REQUEST');
});

test('OST_CREATE precreates a batch; with deleteOrphansAbove it cleans up first', async () => {
  const r1 = await call(Opc.OST_CREATE, { seq: SEQ, count: 32 });
  assert.deepEqual(OstCreateReply.parse(r1.body), { seq: SEQ, first: 1, last: 32 });
  const r2 = await call(Opc.OST_CREATE, { seq: SEQ, count: 8, deleteOrphansAbove: 20 });
  assert.deepEqual(r2.body, { seq: SEQ, first: 21, last: 28, orphansDeleted: 12 });
  await rejectsWith(store.getattr(SEQ, 29), 'ENOENT', 'NO_SUCH_OBJECT');
});

test('OST_WRITE stores the bulk and OST_READ returns it as bulk', async () => {
  const data = Buffer.from('0123456789abcdef'.repeat(4096));
  const w = await call(Opc.OST_WRITE, { seq: SEQ, oid: 5, offset: 1000 }, data);
  assert.equal((w.body as { n: number }).n, data.length);
  assert.equal(typeof (w.body as { ver: string }).ver, 'string', 'the reply names the new data version');
  const w2 = await call(Opc.OST_WRITE, { seq: SEQ, oid: 5, offset: 0, sync: true }, Buffer.from('head'));
  assert.equal((w2.body as { n: number }).n, 4);

  const r = await call(Opc.OST_READ, { seq: SEQ, oid: 5, offset: 0, length: 1 << 20 });
  const bulk = r.bulk as Buffer;
  assert.ok(Buffer.isBuffer(bulk));
  assert.deepEqual(r.body, { n: 1000 + data.length });
  assert.equal(bulk.length, 1000 + data.length);
  assert.equal(bulk.subarray(0, 4).toString(), 'head');
  assert.deepEqual(bulk.subarray(4, 1000), Buffer.alloc(996));
  assert.deepEqual(bulk.subarray(1000), data);
  const onDisk = await readFile(join(root, 'O', '0', 'd5', '5'));
  assert.deepEqual(onDisk, bulk);

  const past = await call(Opc.OST_READ, { seq: SEQ, oid: 5, offset: 10_000_000, length: 10 });
  assert.deepEqual(past.body, { n: 0 });
  assert.equal((past.bulk as Buffer).length, 0);
});

test('OST_GETATTR, OST_SETATTR and OST_PUNCH answer with the object attributes', async () => {
  await call(Opc.OST_WRITE, { seq: SEQ, oid: 6, offset: 0 }, Buffer.alloc(5000, 1));
  const g = ObjAttrReply.parse((await call(Opc.OST_GETATTR, { seq: SEQ, oid: 6 })).body);
  assert.equal(g.size, 5000);
  assert.ok(g.blocks > 0);

  const mtime = { sec: 1_234_567_890, nsec: 42_000 };
  const s = ObjAttrReply.parse((await call(Opc.OST_SETATTR, { seq: SEQ, oid: 6, mtime })).body);
  assert.deepEqual(s.mtime, mtime);
  assert.equal(s.size, 5000);

  const p = ObjAttrReply.parse((await call(Opc.OST_PUNCH, { seq: SEQ, oid: 6, size: 100 })).body);
  assert.equal(p.size, 100);
  const grown = ObjAttrReply.parse((await call(Opc.OST_PUNCH, { seq: SEQ, oid: 6, size: 1 << 20 })).body);
  assert.equal(grown.size, 1 << 20);
  const r = await call(Opc.OST_READ, { seq: SEQ, oid: 6, offset: 90, length: 20 });
  assert.deepEqual(r.bulk, Buffer.concat([Buffer.alloc(10, 1), Buffer.alloc(10)]));
});

test('OST_DESTROY removes the object; OST_STATFS and OST_SYNC answer', async () => {
  assert.deepEqual((await call(Opc.OST_DESTROY, { seq: SEQ, oid: 7 })).body, {});
  await rejectsWith(call(Opc.OST_GETATTR, { seq: SEQ, oid: 7 }), 'ENOENT', 'NO_SUCH_OBJECT');
  await rejectsWith(call(Opc.OST_DESTROY, { seq: SEQ, oid: 7 }), 'ENOENT', 'NO_SUCH_OBJECT');

  const sf = StatFsReply.parse((await call(Opc.OST_STATFS, {})).body);
  assert.ok(sf.bsize > 0 && sf.blocks > 0 && sf.bavail <= sf.blocks);

  assert.deepEqual((await call(Opc.OST_SYNC, {})).body, {});
  assert.deepEqual((await call(Opc.OST_SYNC, { seq: SEQ })).body, {});
  assert.deepEqual((await call(Opc.OST_SYNC, { seq: SEQ, oid: 5 })).body, {});
});

test('stats count requests, latency and bytes per operation', async () => {
  const before = structuredClone(target.stats.counters);
  await call(Opc.OST_WRITE, { seq: SEQ, oid: 8, offset: 0 }, Buffer.alloc(3000, 2));
  await call(Opc.OST_WRITE, { seq: SEQ, oid: 8, offset: 3000 }, Buffer.alloc(1000, 2));
  await call(Opc.OST_READ, { seq: SEQ, oid: 8, offset: 0, length: 4096 });
  await rejectsWith(call(Opc.OST_READ, { seq: SEQ, oid: 8, offset: -1, length: 1 }), 'EINVAL', 'BAD_REQUEST');
  const c = target.stats.counters;
  assert.equal(c.write.samples - before.write.samples, 2);
  assert.equal(c.write.unit, 'usecs');
  assert.equal(c.write_bytes.samples - before.write_bytes.samples, 2);
  assert.equal(c.write_bytes.sum - before.write_bytes.sum, 4000);
  assert.equal(c.write_bytes.unit, 'bytes');
  assert.ok(c.write_bytes.min <= 1000 && c.write_bytes.max >= 3000);
  assert.equal(c.read.samples - before.read.samples, 1, 'a refused request is not counted');
  assert.equal(c.read_bytes.sum - before.read_bytes.sum, 4000);
  assert.ok(c.create.samples >= 2);
  assert.ok(target.stats.start_time.sec > 0);
});

test('every OST opcode the brief lists has a handler, and the OST serves extent locks', () => {
  const expected = [
    Opc.OST_CREATE, Opc.OST_READ, Opc.OST_WRITE, Opc.OST_GETATTR, Opc.OST_SETATTR, Opc.OST_PUNCH, Opc.OST_DESTROY, Opc.OST_STATFS, Opc.OST_SYNC,
    Opc.LDLM_ENQUEUE, Opc.LDLM_CANCEL,
  ];
  assert.deepEqual([...target.handlers.keys()].sort((a, b) => a - b), expected.sort((a, b) => a - b));
});
