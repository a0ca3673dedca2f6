/**
 * The MDT's changelog records (reference §8.5, §7.5), appended to the sink the MDS is
 * given: one record per namespace change with the caller's ids and NID, UNLNK flags that
 * tell the last name went and an archive copy outlives it, RENME naming both files, HSM
 * records with the event in their flags; and a failing changelog never fails an
 * operation. The MDS runs in this process (the MGS and OSSs are daemons) to hand it the
 * sink.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TestCluster } from './helpers/cluster.js';
import { startMds, type RunningMds } from '../src/mds/mds.js';
import { parseNid } from '../src/lnet/nid.js';
import { silentLogger } from '../src/common/log.js';
import { fidKey, type Fid } from '../src/common/fid.js';
import { HS } from '../src/hsm/flags.js';
import type { StriaClient } from '../src/client/client.js';
import { MemoryAgent } from './helpers/memory-agent.js';
import {
  CL, CLF_HSM_EVENT, CLF_UNLINK_HSM_EXISTS, CLF_UNLINK_LAST, hsmRecordFlags, type ChangelogInput, type ChangelogSink,
} from '../src/mds/changelog-types.js';

const ROOT = { uid: 0, gid: 0 };
const ALICE = { uid: 1000, gid: 1000 };
const O_WRONLY = 1;
const WAIT_MS = 30_000;
const NID = '127.0.0.1@tcp';

/** Keeps what the MDT appends; `failing` makes every append throw. */
class ArraySink implements ChangelogSink {
  readonly records: ChangelogInput[] = [];
  failing = false;

  async append(rec: ChangelogInput): Promise<void> {
    if (this.failing) throw new Error('changelog device full');
    this.records.push(rec);
  }

  /** The records about `fid` appended since `from`. */
  about(fid: Fid, from = 0): ChangelogInput[] {
    return this.records.slice(from).filter((r) => fidKey(r.tfid) === fidKey(fid) || (r.sfid && fidKey(r.sfid) === fidKey(fid)));
  }
}

/** Polls `check` until it returns something, within WAIT_MS. */
async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < 10_000; i++) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

let cluster: TestCluster;
let mds: RunningMds;
let client: StriaClient;
let agent: MemoryAgent;
const sink = new ArraySink();
const savedRunDir = process.env.STRIA_RUN_DIR;

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  await cluster.kill9('mds');
  // this process's control socket goes with the cluster's
  process.env.STRIA_RUN_DIR = cluster.runDir;
  mds = await startMds(
    {
      fsname: cluster.fsname, index: 0, storeDir: join(cluster.dir, 'mdt0'), mgsNids: [cluster.mgsNid],
      listen: parseNid(`127.0.0.1:${cluster.ports.mds}@tcp`), fsDefault: { stripeSize: 1 << 20, stripeCount: 1 }, changelog: sink,
    },
    silentLogger(),
  );
  await until('the OSTs', async () => (mds.allocator.allOsts().length === 2 && mds.allocator.allOsts().every((o) => o.active) ? true : undefined));
  client = await cluster.mount();
  agent = new MemoryAgent(await cluster.mount());
  await agent.start();
});

after(async () => {
  await agent?.client.unmount();
  await client?.unmount();
  await mds?.close();
  await cluster?.stop();
  if (savedRunDir === undefined) delete process.env.STRIA_RUN_DIR;
  else process.env.STRIA_RUN_DIR = savedRunDir;
});

function only(recs: ChangelogInput[], type: number): ChangelogInput {
  const found = recs.filter((r) => r.type === type);
  assert.equal(found.length, 1, `one record of type ${type} in ${JSON.stringify(recs)}`);
  return found[0]!;
}

test('namespace changes: one record each, with the caller, its NID and what changed', async () => {
  const from = sink.records.length;
  const d = await client.mkdir(client.root, 'd', { mode: 0o755, cred: ALICE });
  const f = await client.create(d.fid, 'f', { mode: 0o644, cred: ALICE });
  await client.write(f, 0, Buffer.from('some data'));
  await client.close(f);
  const s = await client.symlink(d.fid, 's', 'f', ALICE);
  const p = await client.mknod(d.fid, 'p', { type: 'fifo', mode: 0o600, cred: ALICE });
  await client.link(f.fid, d.fid, 'g');
  await client.setattr(f.fid, { mode: 0o600 });
  await client.setattr(f.fid, { size: 4 });
  await client.setxattr(f.fid, 'user.color', Buffer.from('blue'));
  await client.setDirStripe(d.fid, { stripeCount: 2 });
  const h = await client.create(d.fid, 'h', { mode: 0o644, cred: ALICE });
  await client.close(h);
  await client.rename(d.fid, 'g', d.fid, 'h');
  await client.unlink(d.fid, 's');
  await client.unlink(d.fid, 'f');
  await client.unlink(d.fid, 'h');
  await client.unlink(d.fid, 'p');
  await client.rmdir(client.root, 'd');

  const recs = sink.records.slice(from);
  for (const r of recs) assert.equal(r.nid, NID, 'every record names the client NID');
  assert.deepEqual(only(sink.about(d.fid, from), CL.MKDIR), { type: CL.MKDIR, tfid: d.fid, pfid: client.root, name: 'd', uid: 1000, gid: 1000, nid: NID });
  assert.deepEqual(only(sink.about(f.fid, from), CL.CREAT), { type: CL.CREAT, tfid: f.fid, pfid: d.fid, name: 'f', uid: 1000, gid: 1000, nid: NID });
  assert.deepEqual(only(sink.about(s.fid, from), CL.SLINK).name, 's');
  assert.deepEqual(only(sink.about(p.fid, from), CL.MKNOD).name, 'p');
  assert.equal(only(sink.about(f.fid, from), CL.CLOSE).type, CL.CLOSE, 'the close of the handle it was created with');
  assert.deepEqual(only(sink.about(f.fid, from), CL.HLINK), { type: CL.HLINK, tfid: f.fid, pfid: d.fid, name: 'g', uid: 0, gid: 0, nid: NID });
  only(sink.about(f.fid, from), CL.SATTR);
  only(sink.about(f.fid, from), CL.TRUNC);
  only(sink.about(f.fid, from), CL.XATTR);
  only(sink.about(d.fid, from), CL.LYOUT);
  const ren = only(sink.about(f.fid, from), CL.RENME);
  assert.deepEqual(
    { tfid: ren.tfid, pfid: ren.pfid, name: ren.name, sfid: ren.sfid, spfid: ren.spfid, sname: ren.sname, flags: ren.flags },
    { tfid: h.fid, pfid: d.fid, name: 'h', sfid: f.fid, spfid: d.fid, sname: 'g', flags: CLF_UNLINK_LAST },
    'rename of g over h: h lost its last name',
  );
  const unlinks = recs.filter((r) => r.type === CL.UNLNK);
  assert.deepEqual(unlinks.map((r) => [r.name, r.flags]), [['s', CLF_UNLINK_LAST], ['f', 0], ['h', CLF_UNLINK_LAST], ['p', CLF_UNLINK_LAST]], 'f had two names');
  assert.deepEqual(only(sink.about(d.fid, from), CL.RMDIR).flags, CLF_UNLINK_LAST);
});

test('HSM events: archive, dirty, release, restore, hsm_set, and the unlink of a file with an archive copy', async () => {
  const from = sink.records.length;
  const f = await client.create(client.root, 'cold', { mode: 0o644, cred: ROOT });
  await client.write(f, 0, Buffer.alloc(100_000, 7));
  await client.close(f);
  await client.hsm.request({ action: 'archive', fids: [f.fid] });
  const hsm = (flags: number) => async () => (sink.about(f.fid, from).some((r) => r.type === CL.HSM && r.flags === flags) ? true : undefined);
  await until('the ARCHIVE record', hsm(hsmRecordFlags(CLF_HSM_EVENT.ARCHIVE, 0, false)));

  const w = await client.open(f.fid, O_WRONLY);
  await client.write(w, 0, Buffer.alloc(10, 8));
  await client.close(w);
  await until('the dirty STATE record', hsm(hsmRecordFlags(CLF_HSM_EVENT.STATE, 0, true)));
  await client.hsm.request({ action: 'archive', fids: [f.fid] });
  await until('the archive of the dirty file', async () => ((await client.hsm.state(f.fid)).flags & HS.DIRTY ? undefined : true));

  const attr = await client.getattr(f.fid);
  await client.hsm.release({ fid: f.fid, dataVersion: await client.dataVersion(f.fid), size: attr.size, atime: attr.atime, mtime: attr.mtime, ctime: attr.ctime });
  assert.ok(await hsm(hsmRecordFlags(CLF_HSM_EVENT.RELEASE, 0, false))(), 'RELEASE recorded before the release answers');
  await client.hsm.request({ action: 'restore', fids: [f.fid] });
  await until('the RESTORE record', hsm(hsmRecordFlags(CLF_HSM_EVENT.RESTORE, 0, false)));

  await client.hsm.setState({ fid: f.fid, set: HS.NORELEASE, clear: 0 });
  assert.ok(await hsm(hsmRecordFlags(CLF_HSM_EVENT.STATE, 0, false))(), 'hsm_set recorded');
  await client.unlink(client.root, 'cold');
  const unlink = only(sink.about(f.fid, from), CL.UNLNK);
  assert.equal(unlink.flags, CLF_UNLINK_LAST | CLF_UNLINK_HSM_EXISTS, 'the policy engine learns a copy outlives the file');
});

test('a changelog that fails does not fail the operations', async () => {
  sink.failing = true;
  try {
    const d = await client.mkdir(client.root, 'still-works', { mode: 0o755, cred: ROOT });
    await client.rmdir(client.root, 'still-works');
    assert.equal(sink.about(d.fid).length, 0);
  } finally {
    sink.failing = false;
  }
});
