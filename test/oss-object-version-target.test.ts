/**
 * Object data versions as clients see them through the real RPC layer: getattr, write
 * and punch replies and lock LVBs (granted PR locks and glimpses) carry `ver`; a write
 * or a punch changes it, a read or a time-only setattr does not; a restarted OST (a new
 * target over the same directory) reports other versions for the same, unchanged data.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { idifSeq } from '../src/common/fid.js';
import { silentLogger } from '../src/common/log.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import { RpcServer } from '../src/ptlrpc/server.js';
import { ObjectStore } from '../src/oss/objstore.js';
import { createOstTarget, type OstTarget } from '../src/oss/ost-target.js';
import { ObjAttrReply, OstWriteReply } from '../src/oss/protocol.js';
import { OstClient } from '../src/client/osc.js';
import { LockMode } from '../src/ldlm/modes.js';
import { EXTENT_EOF } from '../src/ldlm/extent.js';
import { objectResource, type EnqueueReply } from '../src/ldlm/protocol.js';

const SEQ = idifSeq(0);
const log = silentLogger();
let root: string;

interface Running {
  store: ObjectStore;
  server: RpcServer;
  target: OstTarget;
  rpc: RpcClient;
  osc: OstClient;
  close(): Promise<void>;
}

async function startOst(): Promise<Running> {
  const store = await ObjectStore.open(root, { fsname: 'fs', index: 0 });
  const server = new RpcServer({ nid: { addr: '127.0.0.1', port: 0, net: 'tcp' } }, log);
  const target = createOstTarget(store, log, { ldlmTimeoutMs: 5_000, evict: (exp, why) => server.evict(exp, why) });
  server.addTarget(target);
  await server.listen();
  const rpc = new RpcClient({ uuid: 'ver-client' }, log);
  const imp = rpc.import({ nids: [{ addr: '127.0.0.1', port: server.port, net: 'tcp' }], target: store.name, connectOpc: Opc.OST_CONNECT, connectData: { fsname: 'fs' }, pingIntervalMs: 0 });
  const osc = new OstClient(0, imp, { maxRpcBytes: 64 * 1024, checksums: false });
  await imp.connect();
  return {
    store,
    server,
    target,
    rpc,
    osc,
    close: async () => {
      await rpc.close();
      target.ldlm.close();
      await server.close();
      await store.close();
    },
  };
}

let ost: Running;
let oid: number;
let cookie = 1;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'stria-objver-'));
  ost = await startOst();
  oid = (await ost.store.precreate(SEQ, 4)).first;
});

after(async () => {
  await ost?.close();
  await rm(root, { recursive: true, force: true });
});

async function ver(): Promise<string> {
  const a = ObjAttrReply.parse(await ost.osc.getattr(SEQ, oid));
  assert.ok(a.ver, 'getattr carries a version');
  return a.ver;
}

async function enqueue(mode: LockMode, intent?: 'glimpse'): Promise<EnqueueReply> {
  const body = { res: objectResource(SEQ, oid), type: 'extent', mode, extent: { start: 0, end: EXTENT_EOF }, cookie: cookie++, ...(intent ? { intent } : {}) };
  return (await ost.osc.imp.request(Opc.LDLM_ENQUEUE, body)).body as EnqueueReply;
}

test('a write changes the version, and its reply and result carry the new one', async () => {
  const v0 = await ver();
  const r = (await ost.osc.imp.request(Opc.OST_WRITE, { seq: SEQ, oid, offset: 0 }, { bulk: Buffer.from('hello') })).body;
  const reply = OstWriteReply.parse(r);
  assert.equal(reply.n, 5);
  assert.notEqual(reply.ver, v0);
  assert.equal(await ver(), reply.ver);
  // Through the OSC, split into several RPCs: the result is the version after the last one.
  const res = await ost.osc.write(SEQ, oid, 0, [Buffer.alloc(200 * 1024, 7)]);
  assert.ok(res.ver);
  assert.notEqual(res.ver, reply.ver);
  assert.equal(await ver(), res.ver, 'the write result names the version the object now has');
});

test('reads and time-only setattrs leave the version alone', async () => {
  const v = await ver();
  await ost.osc.read(SEQ, oid, 0, 4096, () => undefined);
  assert.equal(await ver(), v);
  const s = await ost.osc.setattr(SEQ, oid, { mtime: { sec: 1_000_000, nsec: 0 } });
  assert.equal(s.ver, v);
  assert.equal(await ver(), v);
});

test('a punch changes the version and its reply carries the new one', async () => {
  const v = await ver();
  const p = await ost.osc.punch(SEQ, oid, 10);
  assert.ok(p.ver);
  assert.notEqual(p.ver, v);
  assert.equal(await ver(), p.ver);
});

test('granted PR locks and glimpses carry the version in their LVB', async () => {
  const v = await ver();
  const g = await enqueue(LockMode.PR);
  assert.equal(g.status, 'granted');
  assert.equal(g.lvb?.ver, v);
  await ost.osc.imp.request(Opc.LDLM_CANCEL, { handles: [g.handle] });
  const gl = await enqueue(LockMode.PR, 'glimpse');
  assert.equal(gl.lvb?.ver, v);
  await ost.osc.write(SEQ, oid, 0, [Buffer.from('x')]);
  const gl2 = await enqueue(LockMode.PR, 'glimpse');
  assert.notEqual(gl2.lvb?.ver, v, 'the glimpse after a write sees the new version');
  assert.equal(gl2.lvb?.ver, await ver());
});

test('a restarted OST reports versions never seen before, even for unchanged objects', async () => {
  const other = oid + 1; // never written: reports the floor
  const before = [await ver(), ObjAttrReply.parse(await ost.osc.getattr(SEQ, other)).ver];
  await ost.close();
  ost = await startOst();
  const after = [await ver(), ObjAttrReply.parse(await ost.osc.getattr(SEQ, other)).ver];
  for (let i = 0; i < 2; i++) assert.notEqual(after[i], before[i]);
  assert.notEqual(before[0]!.split('.')[0], after[0]!.split('.')[0], 'another epoch');
});
