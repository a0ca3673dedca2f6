/**
 * OST_WRITE with several ranges (Lustre's niobufs): the OST puts each range's bytes where
 * they belong and refuses malformed range lists before it writes anything; the write-back
 * cache sends scattered dirty bytes in RPC-sized batches of ranges, so 4 KiB random writes
 * no longer cost an RPC each.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, StriaError } from '../src/common/errno.js';
import { idifSeq } from '../src/common/fid.js';
import { silentLogger } from '../src/common/log.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import type { ReplyPayload, RequestContext } from '../src/ptlrpc/types.js';
import { ObjectStore } from '../src/oss/objstore.js';
import { createOstTarget, type OstTarget } from '../src/oss/ost-target.js';
import { rpcBatches } from '../src/client/cache/writeback.js';
import type { DirtyExtent } from '../src/client/cache/dirty-store.js';
import { TestCluster } from './helpers/cluster.js';

const SEQ = idifSeq(3);
let root: string;
let store: ObjectStore;
let target: OstTarget;
let xid = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'stria-ost-segments-'));
  store = await ObjectStore.open(root, { fsname: 'testfs', index: 3 });
  target = createOstTarget(store, silentLogger());
  await call(Opc.OST_CREATE, { seq: SEQ, count: 8 });
});

after(async () => {
  await store?.close();
  await rm(root, { recursive: true, force: true });
});

async function call(opc: number, body: unknown, bulk?: Buffer): Promise<ReplyPayload> {
  const ctx: RequestContext = { opc, xid: ++xid, flags: 0, body, bulk, uid: 0, gid: 0, jobid: 'test.0', export: undefined };
  return (await target.handlers.get(opc)!(ctx)) ?? {};
}

async function readObject(oid: number, length: number): Promise<Buffer> {
  const r = await call(Opc.OST_READ, { seq: SEQ, oid, offset: 0, length });
  const got = r.bulk as Buffer;
  return Buffer.concat([got, Buffer.alloc(length - got.length)]);
}

test('each range of a segmented OST_WRITE lands at its own offset; the gaps stay holes', async () => {
  const segs: Array<[number, number]> = [[0, 3], [4096, 5], [70_000, 65_536 + 7], [1 << 20, 2]];
  const parts = segs.map(([, len], i) => Buffer.alloc(len, 0x41 + i));
  const r = await call(Opc.OST_WRITE, { seq: SEQ, oid: 1, offset: 0, segs }, Buffer.concat(parts));
  assert.equal((r.body as { n: number }).n, parts.reduce((n, p) => n + p.length, 0));
  const size = (1 << 20) + 2;
  const want = Buffer.alloc(size);
  segs.forEach(([off], i) => parts[i]!.copy(want, off));
  assert.deepEqual(await readObject(1, size), want);
});

test('malformed range lists are refused and nothing is written', async () => {
  const bad: Array<[string, Array<[number, number]>, number]> = [
    ['overlapping', [[0, 10], [5, 10]], 20],
    ['out of order', [[100, 10], [0, 10]], 20],
    ['fewer bytes than the bulk', [[0, 10], [20, 10]], 25],
    ['more bytes than the bulk', [[0, 10], [20, 10]], 15],
    ['beyond 2^53', [[0, 1], [2 ** 53 - 1, 2]], 3],
    ['an empty range', [[0, 0], [10, 1]], 1],
  ];
  for (const [why, segs, bulkLen] of bad) {
    await assert.rejects(
      call(Opc.OST_WRITE, { seq: SEQ, oid: 2, offset: 0, segs }, Buffer.alloc(bulkLen, 0x7a)),
      (e: unknown) => e instanceof StriaError && e.errno === Errno.EINVAL,
      why,
    );
  }
  const attr = (await call(Opc.OST_GETATTR, { seq: SEQ, oid: 2 })).body as { size: number };
  assert.equal(attr.size, 0, 'no refused request wrote a byte');
});

test('rpcBatches: offset order, at most maxBytes and maxRanges per RPC, a large extent alone', () => {
  const ext = (off: number, len: number): DirtyExtent => ({ off, len, buf: Buffer.alloc(0), since: 0 });
  const list = [ext(9000, 100), ext(0, 100), ext(5000, 100), ext(20_000, 1000), ext(3000, 100)];
  const b = rpcBatches(list, 350, 10);
  assert.deepEqual(b.map((g) => g.map((e) => e.off)), [[0, 3000, 5000], [9000], [20_000]]);
  assert.deepEqual(rpcBatches(list, 1 << 20, 2).map((g) => g.length), [2, 2, 1]);
  assert.deepEqual(rpcBatches([], 100, 10), []);
});

test('through a client: 256 scattered 4 KiB writes leave in a few RPCs and read back exactly', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.start({ osts: 1 });
  try {
    const a = await cluster.mount();
    const b = await cluster.mount();
    const cred = { uid: 0, gid: 0 };
    const f = await a.create(a.root, 'scattered', { mode: 0o644, cred });
    const size = 8 << 20;
    const model = Buffer.alloc(size);
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const osc = a.ostClients()[0]!;
    const rpcsBefore = osc.stats.writeRpcs;
    for (let i = 0; i < 256; i++) {
      const off = Math.floor(rand() * (size / 4096)) * 4096;
      const data = Buffer.alloc(4096, i & 0xff);
      data.copy(model, off);
      await a.write(f, off, data);
    }
    await a.write(f, size - 1, Buffer.from([0xee]));
    model[size - 1] = 0xee;
    await a.fsync(f);
    const rpcs = osc.stats.writeRpcs - rpcsBefore;
    assert.ok(rpcs <= 8, `256 scattered writes were flushed in ${rpcs} RPCs`);
    await a.close(f);
    const g = await b.open(f.fid, 0);
    assert.deepEqual(await b.read(g, 0, size), model, 'the other client reads every byte where it was written');
    await b.close(g);
    await a.unmount();
    await b.unmount();
  } finally {
    await cluster.stop();
  }
});
