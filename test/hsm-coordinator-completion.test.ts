/**
 * How actions end (reference §7.3): MDS_HSM_PROGRESS from the agent running them; archive
 * recorded only when the file was not written meanwhile; restore installs the target
 * objects or destroys them; remove; errors, retries; cancel of waiting and running actions
 * and hsm_control=purge. Every end is a changelog event.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { err, Errno } from '../src/common/errno.js';
import { CLF_HSM_EVENT } from '../src/mds/changelog-types.js';
import { HS, isReleased } from '../src/hsm/flags.js';
import { AgentExport, newFid, pushedItem, rejects, ROOT, statusOf, USER, withCoordinator } from './hsm-coordinator-fixture.test.js';

const ARCHIVED = { dataVersion: 'v1:0123', size: 3 * 1024 * 1024, checksum: 'sha256:beef' };

test('archive: begin and progress show bytes moved; end records the copy on the inode', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    const f = newFid();
    host.addFile(f);
    const [cookie] = (await c.request(undefined, ROOT, { action: 'archive', archiveId: 2, fids: [f] })).cookies;
    await c.settled();
    await c.progress(a, { cookie: cookie!, fid: f, phase: 'begin' });
    await c.progress(a, { cookie: cookie!, fid: f, phase: 'progress', bytes: 1048576 });
    assert.deepEqual(c.action(f), { action: 'ARCHIVE', status: 'STARTED', phase: 'RUNNING', bytesMoved: 1048576, extent: { offset: 0, length: 1048576 } });
    await c.progress(a, { cookie: cookie!, fid: f, phase: 'end', bytes: ARCHIVED.size, archived: ARCHIVED });
    assert.deepEqual(host.archives, [{ fid: f, archiveId: 2, result: ARCHIVED }]);
    assert.equal(host.inode(f).hsm!.flags, HS.EXISTS | HS.ARCHIVED);
    assert.equal(statusOf(c, cookie!), 'SUCCEED');
    assert.equal(c.hasActive(f), false);
    assert.equal(c.action(f).action, 'NOOP');
    assert.deepEqual(host.events, [{ fid: f, event: CLF_HSM_EVENT.ARCHIVE, errval: 0 }]);
    assert.deepEqual(c.listAgents()[0], { uuid: 'ct-a', archiveIds: [], current: 0, ok: 1, errors: 0, connected: true });
    // too late: the action is over
    await rejects(c.progress(a, { cookie: cookie!, fid: f, phase: 'end', archived: ARCHIVED }), 'HSM_NOT_STARTED');
  });
});

test('a write during an archive makes it fail at completion; a write before dispatch does not', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    const f = newFid();
    const g = newFid();
    host.addFile(f);
    host.addFile(g);
    const [cf, cg] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f, g] })).cookies;
    c.noteWrite(g); // still WAITING: the copy has not started, it will see this data
    c.registerAgent(a, []);
    await c.settled();
    c.noteWrite(f);
    await c.progress(a, { cookie: cf!, fid: f, phase: 'end', archived: ARCHIVED });
    await c.progress(a, { cookie: cg!, fid: g, phase: 'end', archived: ARCHIVED });
    assert.equal(statusOf(c, cf!), 'FAILED');
    assert.equal(statusOf(c, cg!), 'SUCCEED');
    assert.deepEqual(host.archives.map((x) => x.fid.oid), [g.oid]);
    assert.equal(host.inode(f).hsm!.flags, 0);
    assert.equal(c.listActions().find((x) => x.cookie === cf)!.errval, Errno.ECANCELED);
    assert.deepEqual(host.events.find((e) => e.fid.oid === f.oid), { fid: f, event: CLF_HSM_EVENT.ARCHIVE, errval: Errno.ECANCELED });
  });
});

test('an agent error fails the action; with retry it waits for the next loop pass and runs again', async () => {
  await withCoordinator(
    async ({ c, host, clock }) => {
      const a = new AgentExport('ct-a');
      c.registerAgent(a, []);
      const f = newFid();
      const g = newFid();
      host.addFile(f);
      host.addFile(g);
      const [cf, cg] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f, g] })).cookies;
      await c.settled();
      await c.progress(a, { cookie: cf!, fid: f, phase: 'end', errval: Errno.EIO });
      assert.equal(statusOf(c, cf!), 'FAILED');
      assert.deepEqual(host.events.at(-1), { fid: f, event: CLF_HSM_EVENT.ARCHIVE, errval: Errno.EIO });
      await c.progress(a, { cookie: cg!, fid: g, phase: 'end', errval: Errno.EAGAIN, retry: true });
      await c.settled();
      assert.equal(statusOf(c, cg!), 'WAITING');
      assert.equal(a.items().filter((i) => i.cookie === cg).length, 1, 'not pushed again at once');
      await c.tick();
      await c.settled();
      assert.equal(statusOf(c, cg!), 'WAITING');
      clock.advance(1000);
      await c.tick();
      await c.settled();
      assert.equal(statusOf(c, cg!), 'STARTED');
      assert.equal(a.items().filter((i) => i.cookie === cg).length, 2);
      assert.deepEqual(c.listAgents()[0]!.errors, 1);
    },
    { loopPeriodMs: 1000 },
  );
});

test('an archive end without the archived version is refused and fails the action', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    const f = newFid();
    host.addFile(f);
    const [cookie] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
    await c.settled();
    await rejects(c.progress(a, { cookie: cookie!, fid: f, phase: 'end' }), 'HSM_NO_ARCHIVED');
    assert.equal(statusOf(c, cookie!), 'FAILED');
    assert.equal(host.archives.length, 0);
  });
});

test('progress is taken only from the agent running the action, for its own file', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    const other = new AgentExport('ct-other');
    c.registerAgent(a, [1]);
    c.registerAgent(other, [2]);
    const f = newFid();
    host.addFile(f);
    const [cookie] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
    await c.settled();
    await rejects(c.progress(other, { cookie: cookie!, fid: f, phase: 'end', archived: ARCHIVED }), 'HSM_NOT_YOUR_ACTION');
    await rejects(c.progress(a, { cookie: cookie!, fid: newFid(), phase: 'end', archived: ARCHIVED }), 'HSM_WRONG_FID');
    await rejects(c.progress(a, { cookie: 987654, fid: f, phase: 'progress' }), 'HSM_NO_ACTION');
    await rejects(c.progress(a, { cookie: -1, fid: f, phase: 'progress' } as never), 'BAD_REQUEST');
    assert.equal(statusOf(c, cookie!), 'STARTED');
  });
});

test('restore: the agent gets fresh objects, archived size and checksum, file times; success installs them', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    const f = newFid();
    const inode = host.addFile(f, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED, stripeCount: 3, size: 5_000_000 });
    const [cookie] = (await c.request(undefined, USER, { action: 'restore', fids: [f] })).cookies;
    await c.settled();
    const item = pushedItem(a, cookie!);
    assert.equal(item.action, 'RESTORE');
    const r = item.restore!;
    assert.equal(r.layout.pattern, 'raid0');
    assert.equal(r.layout.stripeCount, 3);
    assert.equal(r.layout.objects.length, 3);
    assert.equal(r.size, 5_000_000);
    assert.equal(r.checksum, 'sha256:00ff');
    assert.deepEqual(r.atime, inode.atime);
    assert.deepEqual(r.mtime, inode.mtime);
    await c.progress(a, { cookie: cookie!, fid: f, phase: 'end', bytes: 5_000_000 });
    assert.deepEqual(host.restores, [{ fid: f, layout: r.layout }]);
    assert.equal(isReleased(host.inode(f).hsm), false);
    assert.deepEqual(host.inode(f).layout!.objects, r.layout.objects);
    assert.equal(host.destroyed.length, 0);
    assert.equal(statusOf(c, cookie!), 'SUCCEED');
    assert.deepEqual(host.events, [{ fid: f, event: CLF_HSM_EVENT.RESTORE, errval: 0 }]);
  });
});

test('restore: the restored objects\' data version reported at the end reaches the MDT (to release the file again)', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    const f = newFid();
    host.addFile(f, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED, size: 10 });
    const [cookie] = (await c.request(undefined, USER, { action: 'restore', fids: [f] })).cookies;
    await c.settled();
    await c.progress(a, { cookie: cookie!, fid: f, phase: 'end', archived: { dataVersion: 'v1:restored', size: 10, checksum: 'sha256:00ff' } });
    assert.equal(host.restores[0]!.dataVersion, 'v1:restored');
    assert.equal(host.inode(f).hsm!.archVer, 'v1:restored');
  });
});

test('restore: a failure destroys the target objects and leaves the file released', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    const f = newFid();
    const g = newFid();
    host.addFile(f, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    host.addFile(g, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    const [cf, cg] = (await c.request(undefined, ROOT, { action: 'restore', fids: [f, g] })).cookies;
    await c.settled();
    await c.progress(a, { cookie: cf!, fid: f, phase: 'end', errval: Errno.EIO });
    assert.deepEqual(host.destroyed, pushedItem(a, cf!).restore!.layout.objects);
    assert.equal(isReleased(host.inode(f).hsm), true);
    assert.deepEqual(host.events.at(-1), { fid: f, event: CLF_HSM_EVENT.RESTORE, errval: Errno.EIO });
    // the MDT failing to install the layout is a failure too
    host.failComplete = err('EIO', 'layout swap failed');
    await c.progress(a, { cookie: cg!, fid: g, phase: 'end' });
    assert.equal(statusOf(c, cg!), 'FAILED');
    assert.equal(host.destroyed.length, 4);
    assert.equal(c.action(f).action, 'NOOP');
  });
});

test('restore: objects that cannot be allocated fail the action', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    const f = newFid();
    host.addFile(f, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    host.failAllocate = err('ENOSPC', 'no space on the OSTs');
    const [cookie] = (await c.request(undefined, USER, { action: 'restore', fids: [f] })).cookies;
    await c.settled();
    assert.equal(statusOf(c, cookie!), 'FAILED');
    assert.equal(a.pushed.length, 0);
    assert.deepEqual(host.events, [{ fid: f, event: CLF_HSM_EVENT.RESTORE, errval: Errno.ENOSPC }]);
  });
});

test('remove: success clears the archive flags, also for a FID whose inode is gone', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, [4]);
    const f = newFid();
    const gone = newFid();
    host.addFile(f, { flags: HS.EXISTS | HS.ARCHIVED | HS.NORELEASE, archiveId: 4 });
    const [cf, cg] = (await c.request(undefined, ROOT, { action: 'remove', archiveId: 4, fids: [f, gone] })).cookies;
    await c.settled();
    assert.equal(pushedItem(a, cf!).action, 'REMOVE');
    assert.equal(pushedItem(a, cg!).action, 'REMOVE');
    await c.progress(a, { cookie: cf!, fid: f, phase: 'end' });
    await c.progress(a, { cookie: cg!, fid: gone, phase: 'end' });
    assert.deepEqual(host.removes.map((r) => r.fid.oid), [f.oid, gone.oid]);
    assert.equal(host.inode(f).hsm!.flags, HS.NORELEASE);
    assert.equal(statusOf(c, cg!), 'SUCCEED');
    assert.deepEqual(host.events.map((e) => e.event), [CLF_HSM_EVENT.REMOVE, CLF_HSM_EVENT.REMOVE]);
  });
});

test('cancel: a waiting action is canceled at once; cancel of a file without action answers 0', async () => {
  await withCoordinator(async ({ c, host }) => {
    const f = newFid();
    const idle = newFid();
    host.addFile(f);
    host.addFile(idle);
    const [cookie] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
    const r = await c.request(undefined, ROOT, { action: 'cancel', fids: [f, idle] });
    assert.deepEqual(r.cookies, [cookie, 0]);
    assert.equal(statusOf(c, cookie!), 'CANCELED');
    assert.equal(c.hasActive(f), false);
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    await c.settled();
    assert.equal(a.pushed.length, 0);
    assert.deepEqual(host.events, [{ fid: f, event: CLF_HSM_EVENT.ARCHIVE, errval: Errno.ECANCELED }]);
  });
});

test('cancel: a running action\'s agent gets a CANCEL item; a restore\'s target objects go; late reports are ignored', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    const f = newFid();
    const r = newFid();
    host.addFile(f);
    host.addFile(r, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    const [cf] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
    const [cr] = (await c.request(undefined, USER, { action: 'restore', fids: [r] })).cookies;
    await c.settled();
    const target = pushedItem(a, cr!).restore!.layout;
    await c.request(undefined, ROOT, { action: 'cancel', fids: [f, r] });
    await c.settled();
    assert.deepEqual(a.items('CANCEL').map((i) => i.cookie).sort(), [cf, cr].sort());
    assert.equal(statusOf(c, cf!), 'CANCELED');
    assert.equal(statusOf(c, cr!), 'CANCELED');
    assert.deepEqual(host.destroyed, target.objects);
    // the copytool finishing anyway changes nothing
    await c.progress(a, { cookie: cf!, fid: f, phase: 'end', archived: ARCHIVED });
    await c.progress(a, { cookie: cr!, fid: r, phase: 'end' });
    assert.equal(host.archives.length + host.restores.length, 0);
    assert.equal(isReleased(host.inode(r).hsm), true);
    assert.equal(c.listAgents()[0]!.current, 0);
  });
});

test('a cancel while the MDT installs a restored layout does not destroy the objects being installed', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    const r = newFid();
    host.addFile(r, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    const [cookie] = (await c.request(undefined, USER, { action: 'restore', fids: [r] })).cookies;
    await c.settled();
    let open!: () => void;
    host.completeGate = new Promise<void>((resolve) => (open = resolve));
    const ending = c.progress(a, { cookie: cookie!, fid: r, phase: 'end' });
    for (let i = 0; i < 100 && host.restores.length === 0; i++) await new Promise((res) => setImmediate(res));
    assert.equal(host.restores.length, 1, 'the MDT is installing the layout');
    assert.deepEqual((await c.request(undefined, ROOT, { action: 'cancel', fids: [r] })).cookies, [cookie]);
    await c.setControl('purge');
    open();
    await ending;
    assert.equal(statusOf(c, cookie!), 'SUCCEED');
    assert.equal(host.destroyed.length, 0);
    assert.equal(isReleased(host.inode(r).hsm), false);
  });
});

test('hsm_control=purge cancels every action and leaves the coordinator enabled', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, [1]);
    const fids = Array.from({ length: 4 }, () => newFid());
    for (const f of fids) host.addFile(f);
    const { cookies } = await c.request(undefined, ROOT, { action: 'archive', fids });
    await c.settled();
    c.control = 'disabled';
    await c.setControl('purge');
    assert.equal(c.control, 'enabled');
    assert.deepEqual(cookies.map((k) => statusOf(c, k)), ['CANCELED', 'CANCELED', 'CANCELED', 'CANCELED']);
    assert.equal(a.items('CANCEL').length, 3);
    assert.equal(c.listActive().length, 0);
  });
});
