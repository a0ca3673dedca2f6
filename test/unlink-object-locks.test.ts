/**
 * Early cancel of a file's object locks at unlink: the client that unlinks the last name
 * of a file gives its locks on the file's objects back beside the unlink, so the OST's
 * destroy finds none to call back (no blocking AST). A file with another name keeps its
 * locks, and a file with bytes still cached dirty is left to the callback, which writes
 * them before the lock goes. Counted with the client's blocking ASTs and the OST's
 * destroys (obdfilter.*.stats), never timed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Fid } from '../src/common/fid.js';
import type { StriaClient } from '../src/client/client.js';
import type { Raid0Layout } from '../src/common/layout.js';
import { objectResource } from '../src/ldlm/protocol.js';
import { TestCluster } from './helpers/cluster.js';
import { counter, lctl, parseParams } from './helpers/lctl.js';

const root = { uid: 0, gid: 0 };

describe('object locks at unlink', () => {
  let cluster: TestCluster;
  let a: StriaClient;

  before(async () => {
    cluster = await TestCluster.start({ osts: 1 });
    a = await cluster.mount();
  }, { timeout: 60_000 });

  after(async () => {
    await a?.unmount();
    await cluster?.stop();
  });

  const destroys = async (): Promise<number> => {
    const r = await lctl(cluster.runDir, 'get_param', 'obdfilter.*.stats');
    assert.equal(r.code, 0, r.stderr);
    const stats = parseParams(r.stdout).get(`obdfilter.${cluster.fsname}-OST0000.stats`) ?? '';
    return counter(stats, 'destroy')?.samples ?? 0;
  };

  const until = async (what: string, cond: () => Promise<boolean> | boolean): Promise<void> => {
    for (let i = 0; i < 500 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(await cond(), what);
  };

  const objectLocks = (layout: Raid0Layout): number => {
    const o = layout.objects[0]!;
    return a.dlm.osc(o.ostIdx).locksOn(objectResource(o.seq, o.oid)).length;
  };

  /** A file of 64 KiB written through this client, its bytes on the OST, its lock held. */
  const writtenFile = async (dir: Fid, name: string, flush: boolean): Promise<{ fid: Fid; layout: Raid0Layout }> => {
    const f = await a.create(dir, name, { mode: 0o644, cred: root });
    await a.write(f, 0, Buffer.alloc(64 * 1024, 9));
    if (flush) await a.fsync(f);
    await a.close(f);
    const layout = f.inode.layout as Raid0Layout;
    assert.equal(layout.objects.length, 1);
    assert.equal(objectLocks(layout), 1, 'the writer holds a lock on the object');
    return { fid: f.fid, layout };
  };

  test("unlinking a file's last name gives its object lock back: the OST's destroy calls nothing back", async () => {
    const dir = await a.mkdir(a.root, 'last', { mode: 0o755, cred: root });
    const { layout } = await writtenFile(dir.fid, 'f', true);
    await a.getattr((await a.lookup(dir.fid, 'f')).fid);
    const asts = a.dlm.osc(0).stats.blockingAsts;
    const before = await destroys();
    await a.unlink(dir.fid, 'f');
    await until('the object is destroyed', async () => (await destroys()) > before);
    assert.equal(objectLocks(layout), 0, 'no lock left on the object');
    assert.equal(a.dlm.osc(0).stats.blockingAsts, asts, 'the destroy sent this client no blocking AST');
  });

  test('a file with another name keeps its object lock', async () => {
    const dir = await a.mkdir(a.root, 'linked', { mode: 0o755, cred: root });
    const { fid, layout } = await writtenFile(dir.fid, 'f', true);
    await a.link(fid, dir.fid, 'g');
    await a.getattr((await a.lookup(dir.fid, 'f')).fid);
    await a.unlink(dir.fid, 'f');
    assert.equal(objectLocks(layout), 1, 'the lock stays: the file lives on as g');
    const g = await a.open((await a.lookup(dir.fid, 'g')).fid);
    assert.deepEqual(await a.read(g, 0, 64 * 1024), Buffer.alloc(64 * 1024, 9));
    await a.close(g);
  });

  test('bytes still cached dirty are left to the callback: the lock goes through the blocking AST', async () => {
    const dir = await a.mkdir(a.root, 'dirty', { mode: 0o755, cred: root });
    const { layout } = await writtenFile(dir.fid, 'f', false);
    const asts = a.dlm.osc(0).stats.blockingAsts;
    const before = await destroys();
    await a.unlink(dir.fid, 'f');
    await until('the object is destroyed', async () => (await destroys()) > before);
    assert.equal(objectLocks(layout), 0);
    assert.equal(a.dlm.osc(0).stats.blockingAsts, asts + 1, 'the OST called the lock back before destroying the object');
  });
});
