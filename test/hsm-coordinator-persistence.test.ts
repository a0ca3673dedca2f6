/**
 * The queue lives in the MDT's store (reference §7.3: Lustre's hsm_actions llog): an MDS
 * restart keeps WAITING actions, turns STARTED ones back into WAITING (a restore keeps its
 * target objects), keeps cookies unique, and finished records are purged after
 * grace_delay, in memory and in the store.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HS, isReleased } from '../src/hsm/flags.js';
import { ACTION_KEY_PREFIX, NEXT_COOKIE_KEY } from '../src/hsm/action-store.js';
import { formatActions } from '../src/hsm/hsm-params.js';
import { AgentExport, newFid, pushedItem, ROOT, statusOf, USER, withCoordinator } from './hsm-coordinator-fixture.test.js';

const ARCHIVED = { dataVersion: 'v1:77', size: 10, checksum: 'sha256:aa' };

test('a restart keeps the queue: STARTED become WAITING, restores keep their target objects, cookies stay unique', async () => {
  await withCoordinator(
    async (env) => {
      const { host } = env;
      const a = new AgentExport('ct-a');
      env.c.registerAgent(a, []);
      const r = newFid();
      const f1 = newFid();
      const f2 = newFid();
      const f3 = newFid();
      host.addFile(r, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
      for (const f of [f1, f2, f3]) host.addFile(f);
      const [cr] = (await env.c.request(undefined, USER, { action: 'restore', fids: [r] })).cookies;
      const [c3] = (await env.c.request(undefined, ROOT, { action: 'archive', fids: [f3] })).cookies;
      await env.c.settled();
      await env.c.progress(a, { cookie: c3!, fid: f3, phase: 'end', archived: ARCHIVED });
      const [c1, c2] = (await env.c.request(undefined, ROOT, { action: 'archive', fids: [f1, f2] })).cookies;
      await env.c.settled();
      assert.deepEqual([cr, c3, c1, c2].map((k) => statusOf(env.c, k!)), ['STARTED', 'SUCCEED', 'STARTED', 'WAITING']);
      const target = pushedItem(a, cr!).restore!.layout;

      const c = await env.restart();
      assert.deepEqual([cr, c3, c1, c2].map((k) => statusOf(c, k!)), ['WAITING', 'SUCCEED', 'WAITING', 'WAITING']);
      assert.deepEqual(c.listActions().find((x) => x.cookie === cr)!.restoreLayout, target);
      assert.ok(c.hasActive(r) && c.hasActive(f1) && c.hasActive(f2) && !c.hasActive(f3));
      assert.equal(c.listAgents().length, 0, 'agents register again after a restart');
      // many readers after the restart still share the one restore
      assert.deepEqual((await c.request(undefined, USER, { action: 'restore', fids: [r] })).cookies, [cr]);

      const b = new AgentExport('ct-b');
      c.registerAgent(b, []);
      await c.settled();
      assert.deepEqual(pushedItem(b, cr!).restore!.layout, target);
      assert.equal(host.allocations, 1);
      assert.deepEqual(b.items().map((i) => i.cookie), [cr, c1]);
      await c.progress(b, { cookie: cr!, fid: r, phase: 'end' });
      assert.equal(isReleased(host.inode(r).hsm), false);
      assert.equal(host.destroyed.length, 0);

      const g = newFid();
      host.addFile(g);
      const [cg] = (await c.request(undefined, ROOT, { action: 'archive', fids: [g] })).cookies;
      assert.ok(cg! > Math.max(cr!, c1!, c2!, c3!));
      assert.ok((await env.store.get<number>(NEXT_COOKIE_KEY))! > cg!);
    },
    { maxRequests: 2 },
  );
});

test('a restore that completed just before the restart is not redone and its objects are kept', async () => {
  await withCoordinator(async (env) => {
    const { host } = env;
    const a = new AgentExport('ct-a');
    env.c.registerAgent(a, []);
    const r = newFid();
    host.addFile(r, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    const [cr] = (await env.c.request(undefined, USER, { action: 'restore', fids: [r] })).cookies;
    await env.c.settled();
    const target = pushedItem(a, cr!).restore!.layout;
    // the MDT installed the layout, then went down before the coordinator recorded SUCCEED
    await host.completeRestore(r, target);
    const c = await env.restart();
    const b = new AgentExport('ct-b');
    c.registerAgent(b, []);
    await c.settled();
    assert.equal(statusOf(c, cr!), 'SUCCEED');
    assert.equal(b.pushed.length, 0);
    assert.equal(host.destroyed.length, 0);
  });
});

test('finished actions stay listed for grace_delay, then leave the list and the store', async () => {
  await withCoordinator(
    async (env) => {
      const { host, clock } = env;
      const a = new AgentExport('ct-a');
      env.c.registerAgent(a, []);
      const f = newFid();
      const w = newFid();
      host.addFile(f);
      host.addFile(w);
      const [cf] = (await env.c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
      await env.c.settled();
      env.c.control = 'disabled';
      const [cw] = (await env.c.request(undefined, ROOT, { action: 'archive', fids: [w] })).cookies;
      await env.c.progress(a, { cookie: cf!, fid: f, phase: 'end', archived: ARCHIVED });
      clock.advance(59_000);
      // a restart in between keeps the finished record too
      const c = await env.restart();
      c.control = 'disabled';
      await c.tick();
      assert.match(formatActions(c), new RegExp(`cookie=0x${cf!.toString(16)}/0x${cf!.toString(16)} .* status=SUCCEED`));
      clock.advance(1_000);
      await c.tick();
      assert.deepEqual(c.listActions().map((x) => x.cookie), [cw]);
      const keys = (await env.store.scan(ACTION_KEY_PREFIX, undefined, 100)).map(([k]) => k);
      assert.equal(keys.length, 1);
      assert.ok(keys[0]!.endsWith(cw!.toString(16)));
      // WAITING actions are never purged, however old
      clock.advance(3600_000);
      await c.tick();
      assert.equal(statusOf(c, cw!), 'WAITING');
    },
    { graceDelayMs: 60_000 },
  );
});

test('the loop runs by itself every loop_period (its timer purges finished actions)', async () => {
  await withCoordinator(
    async ({ c, host }) => {
      const a = new AgentExport('ct-a');
      c.registerAgent(a, []);
      const f = newFid();
      host.addFile(f);
      const [cookie] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
      await c.settled();
      await c.progress(a, { cookie: cookie!, fid: f, phase: 'end', archived: ARCHIVED });
      for (let i = 0; i < 500 && c.listActions().length > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(c.listActions().length, 0);
    },
    { clock: Date.now, loopPeriodMs: 5, graceDelayMs: 1 },
  );
});
