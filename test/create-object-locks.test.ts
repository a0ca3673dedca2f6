/**
 * The creator's write locks on a new file's objects: taken on every stripe at once (all
 * enqueues in flight together, not one after the other), each refused rather than queued
 * when something conflicts, so a creator never waits on one stripe while holding another.
 * Observed through the OSC imports' request events and the lock namespaces, never timed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { StriaClient } from '../src/client/client.js';
import type { RpcEventInfo } from '../src/ptlrpc/import.js';
import type { Raid0Layout } from '../src/common/layout.js';
import { LockMode } from '../src/ldlm/modes.js';
import { objectResource } from '../src/ldlm/protocol.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import { TestCluster } from './helpers/cluster.js';

const root = { uid: 0, gid: 0 };

describe("the creator's object locks", () => {
  let cluster: TestCluster;
  let a: StriaClient;
  let b: StriaClient;

  before(async () => {
    cluster = await TestCluster.start({ osts: 4 });
    a = await cluster.mount();
    b = await cluster.mount();
  }, { timeout: 60_000 });

  after(async () => {
    await a?.unmount();
    await b?.unmount();
    await cluster?.stop();
  });

  const pwLocks = (c: StriaClient, layout: Raid0Layout): number =>
    layout.objects.filter((o) => c.dlm.osc(o.ostIdx).locksOn(objectResource(o.seq, o.oid)).some((l) => l.mode === LockMode.PW)).length;

  test('a file striped over 4 OSTs is created with PW on all 4 objects, the 4 enqueues in flight together', async () => {
    // the imports exist once a first file has touched every OST
    const warm = await a.create(a.root, 'warm', { mode: 0o644, cred: root, layout: { stripeCount: 4 } });
    await a.close(warm);
    const events: string[] = [];
    const listeners = a.ostClients().map((osc) => {
      const sent = (info: RpcEventInfo) => { if (info.opc === Opc.LDLM_ENQUEUE) events.push('sent'); };
      const done = (info: RpcEventInfo) => { if (info.opc === Opc.LDLM_ENQUEUE) events.push('done'); };
      osc.imp.on('rpc-sent', sent);
      osc.imp.on('rpc-done', done);
      return () => { osc.imp.off('rpc-sent', sent); osc.imp.off('rpc-done', done); };
    });
    let f;
    try {
      f = await a.create(a.root, 'wide', { mode: 0o644, cred: root, layout: { stripeCount: 4 } });
    } finally {
      for (const off of listeners) off();
    }
    await a.close(f);
    const layout = f.inode.layout as Raid0Layout;
    assert.equal(layout.objects.length, 4);
    assert.equal(pwLocks(a, layout), 4, 'PW on every object');
    assert.deepEqual(events, ['sent', 'sent', 'sent', 'sent', 'done', 'done', 'done', 'done'], 'all four sent before any answer');
  });

  test('a stripe that conflicts is refused at once: nothing waits, nothing is called back, nothing is kept', async () => {
    const f = await a.create(a.root, 'shared', { mode: 0o644, cred: root, layout: { stripeCount: 2 } });
    await a.write(f, 0, Buffer.alloc(8 * 1024 * 1024, 3));
    await a.fsync(f);
    await a.close(f);
    const layout = f.inode.layout as Raid0Layout;
    // b reads the second stripe and keeps its PR lock (the writer's PW is called back for it)
    const g = await b.open(f.fid);
    assert.equal((await b.read(g, 4 * 1024 * 1024 + 10, 10)).length, 10);
    const second = layout.objects[1]!;
    assert.equal(b.dlm.osc(second.ostIdx).locksOn(objectResource(second.seq, second.oid)).length, 1);
    const asts = b.dlm.osc(second.ostIdx).stats.blockingAsts;
    const held = await a.dlm.tryLockWhole(f.fid, layout, LockMode.PW);
    assert.equal(held, undefined, 'refused: a PR lock of another client conflicts on stripe 1');
    assert.equal(b.dlm.osc(second.ostIdx).stats.blockingAsts, asts, "b's lock was not called back");
    assert.equal(b.dlm.osc(second.ostIdx).locksOn(objectResource(second.seq, second.oid)).length, 1);
    await b.close(g);
  });
});
