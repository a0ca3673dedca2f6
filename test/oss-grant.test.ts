/**
 * OST space grants over the real RPC layer, with the OST on a 64 MiB tmpfs so free
 * space is exactly what the test writes: a connect gives a grant; writes that report
 * grant used shrink it and writes that want more top it up; while writes are made from
 * the grant, tot_granted never exceeds free space minus the reserve, so a second client gets only what is left; an export
 * that disconnects or is evicted frees its grant, and the evicted client starts over
 * with its new export's grant. statfs counts granted space as unavailable.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { idifSeq } from '../src/common/fid.js';
import { silentLogger } from '../src/common/log.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import { RpcClient } from '../src/ptlrpc/client.js';
import { RpcServer } from '../src/ptlrpc/server.js';
import { ObjectStore } from '../src/oss/objstore.js';
import { createOstTarget, type OstTarget } from '../src/oss/ost-target.js';
import { GRANT_PAGE_BYTES, OstGrants } from '../src/oss/grant.js';
import { OstClient } from '../src/client/osc.js';
import { ParamRegistry } from '../src/ctl/params.js';
import { registerOssParams } from '../src/ctl/oss-params.js';

const MiB = 1024 * 1024;
const SEQ = idifSeq(0);
const log = silentLogger();
let root: string;
let ostDir: string;
let mounted = false;
let store: ObjectStore;
let server: RpcServer;
let target: OstTarget;
let reg: ParamRegistry;
const rpcs: RpcClient[] = [];

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'stria-grant-'));
  ostDir = join(root, 'ost');
  await mkdir(ostDir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', ostDir]);
  mounted = true;
  store = await ObjectStore.open(ostDir, { fsname: 'fs', index: 0 });
  server = new RpcServer({ nid: { addr: '127.0.0.1', port: 0, net: 'tcp' } }, log);
  target = createOstTarget(store, log, { ldlmTimeoutMs: 5_000, evict: (exp, why) => server.evict(exp, why) });
  server.addTarget(target);
  await server.listen();
  reg = new ParamRegistry();
  registerOssParams(reg, { server, targets: [target] });
});

after(async () => {
  for (const r of rpcs) await r.close().catch(() => undefined);
  target?.ldlm.close();
  await server?.close();
  await store?.close();
  if (mounted) execFileSync('umount', [ostDir]);
  await rm(root, { recursive: true, force: true });
});

async function client(name: string): Promise<OstClient> {
  const rpc = new RpcClient({ uuid: name }, log);
  rpcs.push(rpc);
  const imp = rpc.import({ nids: [{ addr: '127.0.0.1', port: server.port, net: 'tcp' }], target: store.name, connectOpc: Opc.OST_CONNECT, connectData: { fsname: 'fs' }, pingIntervalMs: 0 });
  const osc = new OstClient(0, imp, { maxRpcBytes: 1 * MiB, checksums: false });
  await imp.connect();
  return osc;
}

/** What may be granted at most right now: free bytes (a fresh statfs) minus the reserve. */
async function grantable(): Promise<number> {
  const s = await statfs(ostDir);
  return s.bavail * s.bsize - OstGrants.reserveFor(s.blocks * s.bsize);
}

function exportOf(uuid: string) {
  const e = server.exports(store.name).find((x) => x.clientUuid === uuid);
  assert.ok(e, `an export of ${uuid}`);
  return e;
}

async function totGrantedParam(): Promise<number> {
  const e = reg.entries().find((x) => x.name === `obdfilter.${store.name}.tot_granted`);
  assert.ok(e, 'obdfilter.*.tot_granted is registered');
  return Number(await e.param.get());
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

let oid = 0;
async function newObject(): Promise<number> {
  return (await store.precreate(SEQ, 1)).first;
}

test('connect gives a whole-page grant that the OST accounts to the export', async () => {
  const a = await client('client-a');
  assert.ok(a.curGrantBytes > 0, 'a grant at connect');
  assert.equal(a.curGrantBytes % GRANT_PAGE_BYTES, 0);
  assert.equal(target.grants.grantOf(exportOf('client-a')), a.curGrantBytes);
  assert.equal(target.grants.totGranted, a.curGrantBytes);
  assert.equal(await totGrantedParam(), a.curGrantBytes);
  assert.ok(target.grants.totGranted <= (await grantable()));
});

test('grant used by writes comes off the export; grant wanted is added back by the replies', async () => {
  const a = await client('client-b');
  const exp = exportOf('client-b');
  const start = a.curGrantBytes;
  oid = await newObject();
  const totBefore = target.grants.totGranted;

  // 2 MiB written from the grant, nothing more wanted: the OST's record drops by exactly that.
  assert.equal(a.tryConsumeGrant(2 * MiB), true);
  assert.equal(a.curGrantBytes, start - 2 * MiB);
  a.grantTarget = 0;
  await a.write(SEQ, oid, 0, [Buffer.alloc(2 * MiB, 1)], false, { grantUsed: 2 * MiB, grantGeneration: a.grantGeneration });
  assert.equal(target.grants.grantOf(exp), start - 2 * MiB);
  assert.equal(target.grants.totGranted, totBefore - 2 * MiB);
  assert.equal(a.curGrantBytes, target.grants.grantOf(exp), 'client and OST agree');

  // Wanting more: the next write's reply tops the grant up and the client learns it.
  a.grantTarget = start + 4 * MiB;
  await a.write(SEQ, oid, 2 * MiB, [Buffer.alloc(64 * 1024, 2)]);
  assert.ok(a.curGrantBytes > start - 2 * MiB, 'the grant grew');
  assert.ok(a.curGrantBytes <= start + 4 * MiB, 'never beyond what was wanted');
  assert.equal(a.curGrantBytes, target.grants.grantOf(exp), 'client and OST agree');

  // Grant taken and dropped unwritten goes back locally.
  const held = a.curGrantBytes;
  assert.equal(a.tryConsumeGrant(5000), true);
  assert.equal(a.curGrantBytes, held - 2 * GRANT_PAGE_BYTES, 'rounded up to whole pages');
  a.returnGrant(5000);
  assert.equal(a.curGrantBytes, held);
  assert.equal(a.tryConsumeGrant(held + 1), false, 'no more than held');
  assert.equal(a.curGrantBytes, held);
});

test('tot_granted never exceeds free space minus the reserve, and a new client gets only what is left', async () => {
  const a = await client('client-c');
  a.grantTarget = 1024 * MiB;
  const o = await newObject();
  // Written the way the write-back cache writes: from the grant.
  for (let i = 0; i < 40; i++) {
    assert.equal(a.tryConsumeGrant(256 * 1024), true, `grant for write ${i}`);
    await a.write(SEQ, o, i * 256 * 1024, [Buffer.alloc(256 * 1024, 3)], false, { grantUsed: 256 * 1024 });
    assert.ok(target.grants.totGranted <= (await grantable()), `after write ${i}: tot_granted ${target.grants.totGranted} fits`);
  }
  assert.equal(a.curGrantBytes, target.grants.grantOf(exportOf('client-c')));
  const left = (await grantable()) - target.grants.totGranted;
  assert.ok(left < 8 * MiB, `the greedy client took nearly everything (${left} bytes left)`);

  const d = await client('client-d');
  assert.ok(d.curGrantBytes <= left, `second client's grant ${d.curGrantBytes} is bounded by the ${left} bytes left`);
  assert.ok(target.grants.totGranted <= (await grantable()));
});

test('OST_STATFS and obdfilter.*.kbytesavail count granted space as unavailable', async () => {
  const h = await client('client-h');
  assert.ok(target.grants.totGranted > 0);
  const raw = await statfs(ostDir);
  const seen = await h.statfs();
  const granted = Math.ceil(target.grants.totGranted / raw.bsize);
  assert.equal(seen.bavail, Math.max(0, raw.bavail - granted), 'bavail less the granted blocks');
  assert.equal(seen.blocks, raw.blocks);
  const e = reg.entries().find((x) => x.name === `obdfilter.${store.name}.kbytesavail`);
  assert.ok(e, 'obdfilter.*.kbytesavail is registered');
  assert.equal(Number(await e.param.get()), Math.floor((Math.max(0, raw.bavail - granted) * raw.bsize) / 1024));
});

test('an export that disconnects frees its grant', async () => {
  const e = await client('client-e');
  const held = e.curGrantBytes;
  const before = target.grants.totGranted;
  await e.imp.close();
  await until('the export is gone', () => !server.exports(store.name).some((x) => x.clientUuid === 'client-e'));
  assert.equal(target.grants.totGranted, before - held);
  assert.equal(await totGrantedParam(), before - held);
});

test('an evicted client loses its grant on the OST and starts over with the new export\'s', async () => {
  const f = await client('client-f');
  const gen = f.grantGeneration;
  const before = target.grants.totGranted;
  const held = f.curGrantBytes;
  assert.equal(f.tryConsumeGrant(GRANT_PAGE_BYTES), held >= GRANT_PAGE_BYTES);
  server.evict(exportOf('client-f'), 'test');
  assert.equal(target.grants.totGranted, before - held);
  // The next request reconnects on a new export (after failing with the eviction).
  await f.getattr(SEQ, oid).catch(() => undefined);
  await f.getattr(SEQ, oid);
  assert.notEqual(f.grantGeneration, gen, 'a new grant generation');
  const exp = exportOf('client-f');
  assert.equal(f.curGrantBytes, target.grants.grantOf(exp), 'the new export\'s grant, not the old one');
  // Grant taken under the old export no longer comes back to this one, nor counts there.
  const now = f.curGrantBytes;
  f.returnGrant(GRANT_PAGE_BYTES, gen);
  assert.equal(f.curGrantBytes, now);
  f.grantTarget = 0;
  await f.write(SEQ, oid, 0, [Buffer.alloc(GRANT_PAGE_BYTES)], false, { grantUsed: GRANT_PAGE_BYTES, grantGeneration: gen });
  assert.equal(target.grants.grantOf(exp), now, 'grant used under the old export is not charged to the new one');
});
