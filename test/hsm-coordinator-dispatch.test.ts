/**
 * Dispatch (reference §7.3): at most max_requests STARTED, each to a connected agent
 * registered for its archive id (round robin), pushed as an hsm_action_list; a failed push
 * requeues and sets the agent aside; an agent that is lost or dropped gives its STARTED
 * actions back to the queue; active_request_timeout fails actions that stop progressing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { err, Errno } from '../src/common/errno.js';
import { fidEquals } from '../src/common/fid.js';
import { CLF_HSM_EVENT } from '../src/mds/changelog-types.js';
import { HS } from '../src/hsm/flags.js';
import { HSM_EXTENT_TO_EOF } from '../src/hsm/coordinator.js';
import { AgentExport, newFid, pushedItem, rejects, ROOT, statusOf, withCoordinator } from './hsm-coordinator-fixture.test.js';

test('at most max_requests actions run at once; a finished one frees its slot', async () => {
  await withCoordinator(
    async ({ c, host }) => {
      const agent = new AgentExport('ct-1');
      c.registerAgent(agent, [1]);
      const fids = Array.from({ length: 5 }, () => newFid());
      for (const f of fids) host.addFile(f);
      const { cookies } = await c.request(undefined, ROOT, { action: 'archive', fids });
      await c.settled();
      assert.equal(c.listActive().length, 2);
      assert.deepEqual(agent.items().map((i) => i.cookie), cookies.slice(0, 2));
      await c.progress(agent, { cookie: cookies[0]!, fid: fids[0]!, phase: 'end', errval: Errno.EIO });
      await c.settled();
      assert.equal(c.listActive().length, 2);
      assert.deepEqual(agent.items().map((i) => i.cookie), cookies.slice(0, 3));
      c.tunables.maxRequests = 10;
      await c.settled();
      assert.equal(c.listActive().length, 4);
      assert.throws(() => {
        c.tunables.maxRequests = 0;
      }, { code: 'BAD_VALUE' });
      assert.equal(c.tunables.maxRequests, 10);
    },
    { maxRequests: 2 },
  );
});

test('the action list pushed to the agent names the action, fid, cookie, whole-file extent, archive and data', async () => {
  await withCoordinator(async ({ c, host }) => {
    const agent = new AgentExport('ct-1');
    c.registerAgent(agent, []);
    const f = newFid();
    host.addFile(f);
    const { cookies } = await c.request(undefined, ROOT, { action: 'archive', archiveId: 3, fids: [f], data: 'tag=x' });
    await c.settled();
    assert.equal(agent.pushed.length, 1);
    assert.deepEqual(agent.pushed[0], {
      version: 1,
      fsname: 'testfs',
      archiveId: 3,
      flags: 0,
      items: [{ action: 'ARCHIVE', fid: f, cookie: cookies[0], extent: { offset: 0, length: HSM_EXTENT_TO_EOF }, data: 'tag=x' }],
    });
    const st = c.action(f);
    assert.equal(st.status, 'STARTED');
    assert.equal(st.phase, 'RUNNING');
  });
});

test('each action goes to an agent registered for its archive id; an agent with no list serves every archive', async () => {
  await withCoordinator(async ({ c, host }) => {
    const one = new AgentExport('ct-one');
    const two = new AgentExport('ct-two');
    c.registerAgent(one, [1]);
    c.registerAgent(two, [2, 5]);
    const f1 = newFid();
    const f2 = newFid();
    const f3 = newFid();
    for (const f of [f1, f2, f3]) host.addFile(f);
    const [c1] = (await c.request(undefined, ROOT, { action: 'archive', archiveId: 1, fids: [f1] })).cookies;
    const [c2] = (await c.request(undefined, ROOT, { action: 'archive', archiveId: 5, fids: [f2] })).cookies;
    const [c3] = (await c.request(undefined, ROOT, { action: 'archive', archiveId: 9, fids: [f3] })).cookies;
    await c.settled();
    assert.deepEqual(one.items().map((i) => i.cookie), [c1]);
    assert.deepEqual(two.items().map((i) => i.cookie), [c2]);
    assert.equal(statusOf(c, c3!), 'WAITING');
    const any = new AgentExport('ct-any');
    c.registerAgent(any, []);
    await c.settled();
    assert.deepEqual(any.items().map((i) => i.cookie), [c3]);
    assert.equal(any.pushed[0]!.archiveId, 9);
  });
});

test('agents of one archive take turns; a disconnected agent gets nothing', async () => {
  await withCoordinator(
    async ({ c, host }) => {
      const a = new AgentExport('ct-a');
      const b = new AgentExport('ct-b');
      const down = new AgentExport('ct-down');
      down.connected = false;
      c.registerAgent(down, []);
      c.registerAgent(a, [1]);
      c.registerAgent(b, [1]);
      const fids = Array.from({ length: 6 }, () => newFid());
      for (const f of fids) host.addFile(f);
      await c.request(undefined, ROOT, { action: 'archive', fids });
      await c.settled();
      assert.equal(down.pushed.length, 0);
      assert.equal(a.items().length, 3);
      assert.equal(b.items().length, 3);
    },
    { maxRequests: 10 },
  );
});

test('a failed push puts the action back and sets that agent aside until it registers again or reconnects', async () => {
  await withCoordinator(async ({ c, host }) => {
    const bad = new AgentExport('ct-bad');
    bad.failPushes = err('ETIMEDOUT', 'no answer');
    c.registerAgent(bad, []);
    const f = newFid();
    host.addFile(f);
    const [cookie] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
    await c.settled();
    assert.equal(bad.pushed.length, 1);
    assert.equal(statusOf(c, cookie!), 'WAITING');
    await c.tick();
    await c.settled();
    assert.equal(bad.pushed.length, 1, 'an agent whose push failed is not used again');
    const good = new AgentExport('ct-good');
    c.registerAgent(good, []);
    await c.settled();
    assert.equal(statusOf(c, cookie!), 'STARTED');
    assert.equal(pushedItem(good, cookie!).action, 'ARCHIVE');
    // registering again makes it usable
    bad.failPushes = undefined;
    c.registerAgent(bad, []);
    const g = newFid();
    host.addFile(g);
    const [cookie2] = (await c.request(undefined, ROOT, { action: 'archive', fids: [g] })).cookies;
    await c.settled();
    assert.equal(statusOf(c, cookie2!), 'STARTED');
  });
});

test('an agent whose push failed on a dying connection is used again once its export reconnects', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    a.failPushes = err('ENOTCONN', 'connection is closed');
    const f = newFid();
    host.addFile(f);
    const [cookie] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
    await c.settled();
    assert.equal(statusOf(c, cookie!), 'WAITING');
    a.failPushes = undefined;
    await c.tick();
    await c.settled();
    assert.equal(a.pushed.length, 1, 'same connection: still set aside');
    a.reconnect();
    await c.tick();
    await c.settled();
    assert.equal(statusOf(c, cookie!), 'STARTED');
    assert.equal(a.pushed.length, 2);
  });
});

test('an agent whose connection stays down past agentLostMs loses its actions to another agent; restores keep their target', async () => {
  await withCoordinator(
    async ({ c, host, clock }) => {
      const a = new AgentExport('ct-a');
      c.registerAgent(a, []);
      const arch = newFid();
      const rest = newFid();
      host.addFile(arch);
      host.addFile(rest, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
      const [ca] = (await c.request(undefined, ROOT, { action: 'archive', fids: [arch] })).cookies;
      const [cr] = (await c.request(undefined, ROOT, { action: 'restore', fids: [rest] })).cookies;
      await c.settled();
      const firstLayout = pushedItem(a, cr!).restore!.layout;
      assert.equal(host.allocations, 1);
      const b = new AgentExport('ct-b');
      c.registerAgent(b, []);
      a.connected = false;
      await c.tick();
      clock.advance(4_000);
      await c.tick();
      await c.settled();
      assert.equal(statusOf(c, ca!), 'STARTED', 'a short outage keeps the actions where they are');
      assert.equal(b.pushed.length, 0);
      clock.advance(1_000);
      await c.tick();
      await c.settled();
      assert.equal(pushedItem(b, ca!).action, 'ARCHIVE');
      assert.deepEqual(pushedItem(b, cr!).restore!.layout, firstLayout, 'the restore reuses its target objects');
      assert.equal(host.allocations, 1);
      assert.equal(host.destroyed.length, 0);
      // the lost agent's late report is refused, the new agent's accepted
      a.connected = true;
      await rejects(c.progress(a, { cookie: ca!, fid: arch, phase: 'end', archived: { dataVersion: 'v', size: 1, checksum: 's' } }), 'HSM_NOT_YOUR_ACTION');
      await c.progress(b, { cookie: ca!, fid: arch, phase: 'end', archived: { dataVersion: 'v', size: 1, checksum: 's' } });
      assert.equal(statusOf(c, ca!), 'SUCCEED');
    },
    { agentLostMs: 5_000 },
  );
});

test('a dropped export or an unregistered agent gives its STARTED actions back at once', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-a');
    c.registerAgent(a, []);
    const f = newFid();
    host.addFile(f);
    const [cookie] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
    await c.settled();
    assert.equal(statusOf(c, cookie!), 'STARTED');
    c.dropExport(a);
    await c.settled();
    assert.equal(statusOf(c, cookie!), 'WAITING');
    assert.equal(c.listAgents().length, 0);
    const b = new AgentExport('ct-b');
    c.registerAgent(b, []);
    await c.settled();
    assert.equal(statusOf(c, cookie!), 'STARTED');
    const d = new AgentExport('ct-d');
    c.unregisterAgent(b);
    await c.settled();
    assert.equal(statusOf(c, cookie!), 'WAITING');
    c.registerAgent(d, []);
    await c.settled();
    assert.equal(pushedItem(d, cookie!).fid.oid, f.oid);
  });
});

test('a copytool registering again on a new export gets its old STARTED actions back to dispatch', async () => {
  await withCoordinator(async ({ c, host }) => {
    const first = new AgentExport('ct-same');
    c.registerAgent(first, []);
    const f = newFid();
    host.addFile(f);
    const [cookie] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
    await c.settled();
    const again = new AgentExport('ct-same');
    c.registerAgent(again, []);
    await c.settled();
    assert.equal(pushedItem(again, cookie!).cookie, cookie);
    assert.equal(c.listAgents().length, 1);
  });
});

test('active_request_timeout fails an action that stops progressing, and tells its agent to cancel', async () => {
  await withCoordinator(
    async ({ c, host, clock }) => {
      const a = new AgentExport('ct-a');
      c.registerAgent(a, []);
      const f = newFid();
      host.addFile(f, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
      const [cookie] = (await c.request(undefined, ROOT, { action: 'restore', fids: [f] })).cookies;
      await c.settled();
      const target = pushedItem(a, cookie!).restore!.layout;
      clock.advance(40_000);
      await c.progress(a, { cookie: cookie!, fid: f, phase: 'progress', bytes: 1000 });
      clock.advance(40_000);
      await c.tick();
      assert.equal(statusOf(c, cookie!), 'STARTED', 'progress restarts the clock');
      clock.advance(20_000);
      await c.tick();
      await c.settled();
      assert.equal(statusOf(c, cookie!), 'FAILED');
      const cancel = a.items('CANCEL');
      assert.equal(cancel.length, 1);
      assert.equal(cancel[0]!.cookie, cookie);
      assert.ok(fidEquals(cancel[0]!.fid, f));
      assert.deepEqual(host.destroyed, target.objects);
      assert.deepEqual(host.events.at(-1), { fid: f, event: CLF_HSM_EVENT.RESTORE, errval: Errno.ETIMEDOUT });
      assert.deepEqual(c.listAgents()[0], { uuid: 'ct-a', archiveIds: [], current: 0, ok: 0, errors: 1, connected: true });
      assert.equal(c.action(f).action, 'NOOP');
    },
    { activeRequestTimeoutMs: 60_000 },
  );
});
