/**
 * What MDS_HSM_REQUEST may queue (reference §7.3, mdt_hsm_cdt_client.c): permissions
 * (users may only restore), the file states each action needs or refuses, archive ids,
 * one action per FID (many restores share one), all-or-nothing validation, hsm_control.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Errno } from '../src/common/errno.js';
import { HS } from '../src/hsm/flags.js';
import { HSM_EXTENT_TO_EOF } from '../src/hsm/coordinator.js';
import { AgentExport, newFid, rejects, ROOT, statusOf, USER, withCoordinator } from './hsm-coordinator-fixture.test.js';

test('users may only restore; archive, remove and cancel need root', async () => {
  await withCoordinator(async ({ c, host }) => {
    const plain = newFid();
    const archived = newFid();
    const released = newFid();
    host.addFile(plain);
    host.addFile(archived, { flags: HS.EXISTS | HS.ARCHIVED });
    host.addFile(released, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    await rejects(c.request(undefined, USER, { action: 'archive', fids: [plain] }), 'HSM_NOT_PERMITTED');
    await rejects(c.request(undefined, USER, { action: 'remove', fids: [archived] }), 'HSM_NOT_PERMITTED');
    await rejects(c.request(undefined, USER, { action: 'cancel', fids: [released] }), 'HSM_NOT_PERMITTED');
    assert.equal(c.listActions().length, 0);
    const r = await c.request(undefined, USER, { action: 'restore', fids: [released] });
    assert.equal(r.cookies.length, 1);
    assert.ok(r.cookies[0]! > 0);
    assert.equal(c.action(released).action, 'RESTORE');
    const root = await c.request(undefined, ROOT, { action: 'archive', fids: [plain] });
    assert.ok(root.cookies[0]! > 0);
  });
});

test('archive: regular files only, never_archive refused, nothing to do for an archived clean or released file', async () => {
  await withCoordinator(async ({ c, host }) => {
    const dir = newFid();
    const noarchive = newFid();
    const clean = newFid();
    const released = newFid();
    const dirty = newFid();
    const fresh = newFid();
    host.addFile(dir, { type: 'dir' });
    host.addFile(noarchive, { flags: HS.NOARCHIVE });
    host.addFile(clean, { flags: HS.EXISTS | HS.ARCHIVED });
    host.addFile(released, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    host.addFile(dirty, { flags: HS.EXISTS | HS.ARCHIVED | HS.DIRTY });
    host.addFile(fresh);
    await rejects(c.request(undefined, ROOT, { action: 'archive', fids: [dir] }), 'NOT_REGULAR');
    await rejects(c.request(undefined, ROOT, { action: 'archive', fids: [noarchive] }), 'HSM_NOARCHIVE');
    await rejects(c.request(undefined, ROOT, { action: 'archive', fids: [newFid()] }), 'ENOENT');
    assert.deepEqual((await c.request(undefined, ROOT, { action: 'archive', fids: [clean, released] })).cookies, [0, 0]);
    const r = await c.request(undefined, ROOT, { action: 'archive', fids: [dirty, fresh] });
    assert.ok(r.cookies.every((x) => x > 0));
    assert.notEqual(r.cookies[0], r.cookies[1]);
    assert.equal(c.listActions().length, 2);
    assert.ok(c.hasActive(dirty) && c.hasActive(fresh) && !c.hasActive(clean));
  });
});

test('archive ids: 0 takes the file copy\'s archive, else default_archive_id; another archive than the copy\'s is refused', async () => {
  await withCoordinator(async ({ c, host }) => {
    c.tunables.defaultArchiveId = 7;
    const fresh = newFid();
    const inTwo = newFid();
    const explicit = newFid();
    host.addFile(fresh);
    host.addFile(inTwo, { flags: HS.EXISTS | HS.ARCHIVED | HS.DIRTY, archiveId: 2 });
    host.addFile(explicit);
    await rejects(c.request(undefined, ROOT, { action: 'archive', archiveId: 3, fids: [inTwo] }), 'HSM_OTHER_ARCHIVE');
    await c.request(undefined, ROOT, { action: 'archive', fids: [fresh, inTwo] });
    await c.request(undefined, ROOT, { action: 'archive', archiveId: 4, fids: [explicit] });
    const byOid = new Map(c.listActions().map((a) => [a.fid.oid, a.archiveId]));
    assert.equal(byOid.get(fresh.oid), 7);
    assert.equal(byOid.get(inTwo.oid), 2);
    assert.equal(byOid.get(explicit.oid), 4);
  });
});

test('one action per file: a second request gets the queued action\'s cookie, many restores make one', async () => {
  await withCoordinator(async ({ c, host }) => {
    const f = newFid();
    const r = newFid();
    host.addFile(f);
    host.addFile(r, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    const a1 = await c.request(undefined, ROOT, { action: 'archive', fids: [f] });
    const a2 = await c.request(undefined, ROOT, { action: 'archive', fids: [f, f] });
    assert.deepEqual(a2.cookies, [a1.cookies[0], a1.cookies[0]]);
    const readers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => c.request(undefined, { uid: 1000 + i, gid: 1000 }, { action: 'restore', fids: [r] })),
    );
    const cookies = new Set(readers.map((x) => x.cookies[0]));
    assert.equal(cookies.size, 1);
    assert.ok([...cookies][0]! > 0);
    assert.equal(c.listActions().filter((a) => a.action === 'RESTORE').length, 1);
  });
});

test('restore: cookie 0 for a file that is not released; refused without a current archive copy', async () => {
  await withCoordinator(async ({ c, host }) => {
    const plain = newFid();
    const archived = newFid();
    const lost = newFid();
    const dirty = newFid();
    host.addFile(plain);
    host.addFile(archived, { flags: HS.EXISTS | HS.ARCHIVED });
    host.addFile(lost, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED | HS.LOST });
    host.addFile(dirty, { flags: HS.EXISTS | HS.ARCHIVED | HS.DIRTY });
    assert.deepEqual((await c.request(undefined, USER, { action: 'restore', fids: [plain, archived] })).cookies, [0, 0]);
    await rejects(c.request(undefined, USER, { action: 'restore', fids: [lost] }), 'HSM_NO_COPY');
    await rejects(c.request(undefined, ROOT, { action: 'restore', fids: [dirty] }), 'HSM_NO_COPY');
    assert.equal(c.listActions().length, 0);
  });
});

test('remove: refused for a released file; a FID without inode needs an explicit archive id', async () => {
  await withCoordinator(async ({ c, host }) => {
    const released = newFid();
    const never = newFid();
    const archived = newFid();
    const gone = newFid();
    host.addFile(released, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    host.addFile(never);
    host.addFile(archived, { flags: HS.EXISTS | HS.ARCHIVED, archiveId: 3 });
    await rejects(c.request(undefined, ROOT, { action: 'remove', fids: [released] }), 'HSM_RELEASED');
    await assert.rejects(c.request(undefined, ROOT, { action: 'remove', fids: [released] }), { errno: Errno.EBUSY });
    await rejects(c.request(undefined, ROOT, { action: 'remove', fids: [gone] }), 'HSM_NEED_ARCHIVE_ID');
    assert.deepEqual((await c.request(undefined, ROOT, { action: 'remove', fids: [never] })).cookies, [0]);
    const r = await c.request(undefined, ROOT, { action: 'remove', archiveId: 5, fids: [gone, archived] });
    assert.ok(r.cookies.every((x) => x > 0));
    const byOid = new Map(c.listActions().map((a) => [a.fid.oid, a]));
    assert.equal(byOid.get(gone.oid)?.archiveId, 5);
    assert.equal(byOid.get(gone.oid)?.action, 'REMOVE');
    assert.equal(byOid.get(archived.oid)?.archiveId, 5);
  });
});

test('all or nothing: one bad FID queues none of the request', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = newFid();
    const b = newFid();
    host.addFile(a);
    host.addFile(b, { flags: HS.NOARCHIVE });
    await rejects(c.request(undefined, ROOT, { action: 'archive', fids: [a, newFid()] }), 'ENOENT');
    await rejects(c.request(undefined, ROOT, { action: 'archive', fids: [a, b] }), 'HSM_NOARCHIVE');
    assert.equal(c.hasActive(a), false);
    assert.equal(c.listActions().length, 0);
  });
});

test('hsm_action view: NOOP without an action, WAITING over the whole file when queued', async () => {
  await withCoordinator(async ({ c, host }) => {
    const f = newFid();
    host.addFile(f);
    assert.deepEqual(c.action(f), { action: 'NOOP', bytesMoved: 0, extent: { offset: 0, length: 0 } });
    await c.request(undefined, ROOT, { action: 'archive', fids: [f] });
    assert.deepEqual(c.action(f), {
      action: 'ARCHIVE', status: 'WAITING', phase: 'WAITING', bytesMoved: 0, extent: { offset: 0, length: HSM_EXTENT_TO_EOF },
    });
  });
});

test('hsm_control: disabled queues without dispatching, shutdown refuses requests, enabled dispatches', async () => {
  await withCoordinator(async ({ c, host }) => {
    const agent = new AgentExport('ct-1');
    c.registerAgent(agent, []);
    const f1 = newFid();
    const f2 = newFid();
    host.addFile(f1);
    host.addFile(f2);
    c.control = 'disabled';
    const { cookies } = await c.request(undefined, ROOT, { action: 'archive', fids: [f1] });
    await c.settled();
    assert.equal(agent.pushed.length, 0);
    assert.equal(statusOf(c, cookies[0]!), 'WAITING');
    c.control = 'shutdown';
    await rejects(c.request(undefined, ROOT, { action: 'archive', fids: [f2] }), 'HSM_SHUTDOWN');
    await rejects(c.request(undefined, USER, { action: 'restore', fids: [f2] }), 'HSM_SHUTDOWN');
    await c.tick();
    assert.equal(agent.pushed.length, 0);
    assert.throws(() => {
      c.control = 'sideways' as never;
    }, { code: 'BAD_VALUE' });
    c.control = 'enabled';
    await c.settled();
    assert.equal(statusOf(c, cookies[0]!), 'STARTED');
    assert.equal(agent.items('ARCHIVE').length, 1);
  });
});
