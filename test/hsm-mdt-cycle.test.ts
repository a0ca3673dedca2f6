/**
 * HSM through a real MDT (MGS, MDS, 3 OSS as processes; reference §7): hsm_state and
 * hsm_set with their permissions, DIRTY on open for write and truncate, the release
 * checks, and a whole archive -> release -> restore cycle driven by a StriaClient acting
 * as the copytool agent (its archive kept in memory): the released file's objects leave
 * the OSTs, stat does not change, many restore requests make one action, and the data
 * comes back readable through ordinary reads.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { TestCluster } from './helpers/cluster.js';
import { lctl } from './helpers/lctl.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import type { Fid } from '../src/common/fid.js';
import { Errno, type ErrnoName } from '../src/common/errno.js';
import type { OstObject } from '../src/common/layout.js';
import { objectLocation } from '../src/oss/objpath.js';
import { HS, formatHsmState } from '../src/hsm/flags.js';
import type { StriaClient } from '../src/client/client.js';
import { MemoryAgent } from './helpers/memory-agent.js';

const ROOT = { uid: 0, gid: 0 };
const ALICE = { uid: 1000, gid: 1000 };
const BOB = { uid: 1001, gid: 1001 };
const O_WRONLY = 1;
const SIZE = 300 * 1024 + 17;
const DATA = pseudoRandomBuffer(SIZE, 0x45a1);
const WAIT_MS = 30_000;

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

/** The error has this errno and, when given, this code. */
const rejectsWith = (errno: ErrnoName, code?: string) => (e: Error & { code?: string; errno?: number }) => {
  assert.equal(e.errno, Errno[errno], `${errno} expected: ${e.message}`);
  if (code) assert.equal(e.code, code, e.message);
  return true;
};

let cluster: TestCluster;
let client: StriaClient;
let agent: MemoryAgent;
let mdt: string;

before(async () => {
  cluster = await TestCluster.start({ osts: 3 });
  client = await cluster.mount();
  agent = new MemoryAgent(await cluster.mount());
  await agent.start();
  mdt = `${cluster.fsname}-MDT0000`;
});

after(async () => {
  await agent?.client.unmount();
  await client?.unmount();
  await cluster?.stop();
});

async function newFile(name: string, cred = ROOT, data = DATA): Promise<Fid> {
  const f = await client.create(client.root, name, { mode: 0o644, cred, layout: { stripeCount: 3, stripeSize: 64 * 1024 } });
  if (data.length > 0) await client.write(f, 0, data);
  await client.fsync(f);
  await client.close(f);
  return f.fid;
}

async function flags(fid: Fid): Promise<number> {
  return (await client.hsm.state(fid)).flags;
}

async function archive(fid: Fid): Promise<void> {
  const { cookies } = await client.hsm.request({ action: 'archive', fids: [fid] });
  assert.ok(cookies[0]! > 0, 'an archive was queued');
  await until('the archive', async () => ((await flags(fid)) & HS.ARCHIVED && !((await flags(fid)) & HS.DIRTY) ? true : undefined));
}

async function releaseBody(fid: Fid) {
  const attr = await client.getattr(fid);
  return { fid, dataVersion: await client.dataVersion(fid), size: attr.size, atime: attr.atime, mtime: attr.mtime, ctime: attr.ctime };
}

function objectPath(o: OstObject): string {
  return join(cluster.ostDir(o.ostIdx), objectLocation(o.seq, o.oid, o.ostIdx, cluster.fsname).path);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

test('hsm_state and hsm_set: users change norelease/noarchive/dirty of their own files, root anything but released', async () => {
  const fid = await newFile('state', ALICE, Buffer.alloc(0));
  assert.deepEqual(await client.hsm.state(fid, BOB), { flags: 0, archiveId: 0 }, 'anyone reads the state');
  assert.deepEqual(await client.hsm.setState({ fid, set: HS.NORELEASE | HS.NOARCHIVE, clear: 0 }, ALICE), { flags: HS.NORELEASE | HS.NOARCHIVE, archiveId: 0 });
  await assert.rejects(client.hsm.setState({ fid, set: HS.EXISTS, clear: 0 }, ALICE), rejectsWith('EPERM'));
  await assert.rejects(client.hsm.setState({ fid, set: 0, clear: HS.NORELEASE }, BOB), rejectsWith('EPERM'));
  await assert.rejects(client.hsm.setState({ fid, set: 0, clear: 0, archiveId: 3 }, ALICE), rejectsWith('EPERM'));
  await assert.rejects(client.hsm.setState({ fid, set: HS.DIRTY, clear: 0 }, ALICE), rejectsWith('EINVAL', 'BAD_HSM_FLAGS'));
  const r = await client.hsm.setState({ fid, set: HS.EXISTS | HS.ARCHIVED | HS.LOST, clear: HS.NOARCHIVE, archiveId: 3 }, ROOT);
  assert.equal(formatHsmState(r), '(0x00000059) exists archived never_release lost_from_hsm, archive_id:3');
  await assert.rejects(client.hsm.setState({ fid, set: HS.RELEASED, clear: 0 }, ROOT), rejectsWith('EINVAL', 'BAD_HSM_FLAGS'));
  assert.equal(formatHsmState(await client.hsm.state(fid)), '(0x00000059) exists archived never_release lost_from_hsm, archive_id:3');
});

test('only root archives or releases; users may restore', async () => {
  const fid = await newFile('perm');
  await assert.rejects(client.hsm.request({ action: 'archive', fids: [fid] }, ALICE), rejectsWith('EPERM'));
  await assert.rejects(client.hsm.release(await releaseBody(fid), ALICE), rejectsWith('EPERM'));
  assert.deepEqual(await client.hsm.request({ action: 'restore', fids: [fid] }, ALICE), { cookies: [0] }, 'not released: nothing to restore');
});

test('a write and a truncate make an archived file dirty; opens without writes do not', async () => {
  const fid = await newFile('dirty');
  await archive(fid);
  assert.equal(await flags(fid), HS.EXISTS | HS.ARCHIVED);
  const r = await client.open(fid, 0);
  await client.close(r);
  assert.equal(await flags(fid), HS.EXISTS | HS.ARCHIVED, 'read-only open');
  const t = await client.open(fid, O_WRONLY);
  await client.close(t);
  assert.equal(await flags(fid), HS.EXISTS | HS.ARCHIVED, 'an open for write with no write (touch does that)');
  const w = await client.open(fid, O_WRONLY);
  await client.write(w, 0, Buffer.from('x'));
  assert.equal(await flags(fid), HS.EXISTS | HS.ARCHIVED, 'not before the close: the writer may still be writing');
  await client.close(w);
  assert.equal(await flags(fid), HS.EXISTS | HS.ARCHIVED | HS.DIRTY, 'the close of a handle that wrote');

  await archive(fid);
  assert.equal(await flags(fid), HS.EXISTS | HS.ARCHIVED, 'archived again: clean');
  await client.setattr(fid, { size: 1000 });
  assert.equal(await flags(fid), HS.EXISTS | HS.ARCHIVED | HS.DIRTY, 'truncate');
});

test('release refuses files not archived, dirty, open for write or changed since the archive', async () => {
  const fid = await newFile('refuse');
  await assert.rejects(client.hsm.release(await releaseBody(fid)), rejectsWith('EPERM', 'NOT_ARCHIVED'));
  await archive(fid);
  const body = await releaseBody(fid);
  await assert.rejects(client.hsm.release({ ...body, dataVersion: 'v1:not-the-archived-one' }), rejectsWith('EPERM', 'DATA_VERSION'));
  await client.hsm.setState({ fid, set: HS.NORELEASE, clear: 0 });
  await assert.rejects(client.hsm.release(body), rejectsWith('EPERM', 'NORELEASE'));
  await client.hsm.setState({ fid, set: 0, clear: HS.NORELEASE });

  const w = await client.open(fid, O_WRONLY);
  await assert.rejects(client.hsm.release(body), rejectsWith('EBUSY', 'OPEN_FOR_WRITE'));
  await client.write(w, 0, Buffer.from('changed'));
  await client.close(w);
  await assert.rejects(client.hsm.release(await releaseBody(fid)), rejectsWith('EPERM', 'DIRTY'));
  // even with DIRTY cleared by hand, data that moved on is not the archived version
  await client.hsm.setState({ fid, set: 0, clear: HS.DIRTY });
  await assert.rejects(client.hsm.release(await releaseBody(fid)), rejectsWith('EPERM', 'DATA_VERSION'));
  const attr = await client.getattr(fid);
  assert.equal(attr.layout?.pattern, 'raid0', 'still has its objects');
  for (const o of attr.layout!.objects) assert.ok(await exists(objectPath(o)), 'objects still on the OSTs');
});

test('a write during an archive cancels it: the action fails and the file stays as it was', async () => {
  const fid = await newFile('busy');
  agent.hold = true;
  const { cookies } = await client.hsm.request({ action: 'archive', fids: [fid] });
  await until('the archive to reach the agent', async () => (agent.held.some((i) => i.cookie === cookies[0]) ? true : undefined));
  assert.equal((await client.hsm.action(fid)).action, 'ARCHIVE');
  const w = await client.open(fid, O_WRONLY);
  await client.close(w);
  agent.release();
  await until('the archive to end', async () => ((await client.hsm.action(fid)).action === 'NOOP' ? true : undefined));
  assert.equal(await flags(fid), 0, 'not archived');
});

test('archive, release, restore: objects freed, stat unchanged, one restore for many requests, data back', async () => {
  const fid = await newFile('cycle');
  await archive(fid);
  assert.equal(formatHsmState(await client.hsm.state(fid)), '(0x00000009) exists archived, archive_id:1');
  const before = await client.getattr(fid);
  const objects = before.layout!.objects;
  assert.equal(objects.length, 3);
  for (const o of objects) assert.ok(await exists(objectPath(o)));

  const r = await client.hsm.release(await releaseBody(fid));
  assert.equal(r.inode.layout?.pattern, 'released');
  assert.equal(r.inode.layout?.layoutGen, before.layout!.layoutGen + 1);
  assert.deepEqual(r.inode.layout?.objects, []);
  assert.equal(formatHsmState(await client.hsm.state(fid)), '(0x0000000d) released exists archived, archive_id:1');
  await until('the objects to be destroyed', async () => {
    for (const o of objects) if (await exists(objectPath(o))) return undefined;
    return true;
  });
  const stat = await client.getattr(fid);
  assert.equal(stat.size, SIZE, 'size kept');
  assert.deepEqual([stat.mtime, stat.atime, stat.ctime, stat.mode, stat.uid], [before.mtime, before.atime, before.ctime, before.mode, before.uid], 'times and owner kept');
  assert.equal(stat.blocks, 1, 'a released file shows one block');
  assert.deepEqual(await client.hsm.release(await releaseBody(fid)).then((x) => x.inode.layout?.pattern), 'released', 'released twice: success');
  await assert.rejects(client.mdc.setattr(fid, { size: 10 }), rejectsWith('ENODATA', 'RELEASED'));
  await assert.rejects(client.hsm.request({ action: 'remove', fids: [fid] }), rejectsWith('EBUSY'));

  agent.hold = true;
  const first = await client.hsm.request({ action: 'restore', fids: [fid] }, ALICE);
  const other = await cluster.mount();
  try {
    const second = await other.hsm.request({ action: 'restore', fids: [fid] }, BOB);
    const third = await client.hsm.request({ action: 'restore', fids: [fid] });
    assert.ok(first.cookies[0]! > 0);
    assert.deepEqual([second.cookies, third.cookies], [first.cookies, first.cookies], 'one restore action for every request');
  } finally {
    await other.unmount();
  }
  await until('the restore to reach the agent', async () => (agent.held.length > 0 ? true : undefined));
  assert.equal(agent.held.length, 1, 'one action dispatched');
  const item = agent.held[0]!;
  assert.equal(item.action, 'RESTORE');
  assert.equal(item.restore?.size, SIZE);
  assert.equal(item.restore?.layout.stripeCount, 3, 'as many stripes as before');
  assert.equal(item.restore?.layout.stripeSize, 64 * 1024);
  const act = await client.hsm.action(fid);
  assert.deepEqual([act.action, act.status], ['RESTORE', 'STARTED']);
  await assert.rejects(client.hsm.release(await releaseBody(fid)), rejectsWith('EBUSY', 'HSM_ACTION_ACTIVE'));

  agent.release();
  const restored = await until('the restore', async () => {
    const a = await client.getattr(fid);
    return a.layout?.pattern === 'raid0' ? a : undefined;
  });
  assert.deepEqual(restored.layout?.objects, item.restore!.layout.objects, 'the objects the agent filled');
  assert.equal(restored.layout?.layoutGen, before.layout!.layoutGen + 2);
  assert.equal(formatHsmState(await client.hsm.state(fid)), '(0x00000009) exists archived, archive_id:1');
  assert.equal(restored.size, SIZE);
  assert.deepEqual(restored.mtime, before.mtime, 'mtime survives the round trip');
  const f = await client.open(fid, 0);
  const back = await client.read(f, 0, SIZE);
  await client.close(f);
  assert.ok(back.equals(DATA), 'the restored data reads back identical');
});

test('lctl shows the coordinator: agents, tunables, hsm_control', async () => {
  const p = `mdt.${mdt}`;
  const got = await lctl(cluster.runDir, 'get_param', '-n', `${p}.hsm_control`, `${p}.hsm.max_requests`, `${p}.hsm.agents`);
  assert.equal(got.code, 0, got.stderr);
  const lines = got.stdout.trim().split('\n');
  assert.equal(lines[0], 'enabled');
  assert.equal(lines[1], '3');
  assert.match(lines[2]!, /^uuid=\S+ archive_id=1 requests=\[current:0 ok:\d+ errors:\d+\]$/);
  const set = await lctl(cluster.runDir, 'set_param', `${p}.hsm.max_requests=5`);
  assert.equal(set.code, 0, set.stderr);
  assert.equal((await lctl(cluster.runDir, 'get_param', '-n', `${p}.hsm.max_requests`)).stdout.trim(), '5');
  const bad = await lctl(cluster.runDir, 'set_param', `${p}.hsm_control=sometimes`);
  assert.notEqual(bad.code, 0);
});
