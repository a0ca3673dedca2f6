/**
 * The coordinator's lctl views and tunables (reference §7.3, §7.4): hsm.agents,
 * hsm.actions and hsm.active_requests as Lustre prints them, the tunables in Lustre's
 * units (seconds for times) with their validation, hsm_control.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HS } from '../src/hsm/flags.js';
import {
  formatActions, formatActiveRequests, formatAgents, formatControl, getTunable, hsmParams, setControl, setTunable,
} from '../src/hsm/hsm-params.js';
import { AgentExport, newFid, ROOT, USER, withCoordinator } from './hsm-coordinator-fixture.test.js';

const x = (n: number) => n.toString(16);

test('hsm.agents: one line per agent with its archive ids (ANY for all) and request counters', async () => {
  await withCoordinator(async ({ c, host }) => {
    assert.equal(formatAgents(c), '');
    const a = new AgentExport('0b8f4c1e-ct-a');
    const b = new AgentExport('0b8f4c1e-ct-b');
    const d = new AgentExport('0b8f4c1e-ct-d');
    c.registerAgent(a, [1]);
    c.registerAgent(d, [2, 3]);
    const f = newFid();
    const g = newFid();
    host.addFile(f);
    host.addFile(g);
    const [cf] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f] })).cookies;
    const [cg] = (await c.request(undefined, ROOT, { action: 'archive', archiveId: 3, fids: [g] })).cookies;
    await c.settled();
    await c.progress(d, { cookie: cg!, fid: g, phase: 'end', errval: 5 });
    c.registerAgent(b, []);
    assert.ok(a.items().some((i) => i.cookie === cf));
    assert.equal(
      formatAgents(c),
      'uuid=0b8f4c1e-ct-a archive_id=1 requests=[current:1 ok:0 errors:0]\n' +
        'uuid=0b8f4c1e-ct-d archive_id=2,3 requests=[current:0 ok:0 errors:1]\n' +
        'uuid=0b8f4c1e-ct-b archive_id=ANY requests=[current:0 ok:0 errors:0]\n',
    );
  });
});

test('hsm.actions: one llog-style line per action, data dumped in hex, finished ones included', async () => {
  await withCoordinator(async ({ c, host }) => {
    const f = { seq: 0x200000400, oid: 0x2a, ver: 0 };
    const g = { seq: 0x200000401, oid: 0x7, ver: 0 };
    host.addFile(f);
    host.addFile(g, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED, archiveId: 2 });
    const [cf] = (await c.request(undefined, ROOT, { action: 'archive', fids: [f], data: 'tag=mytag' })).cookies;
    const [cg] = (await c.request(undefined, USER, { action: 'restore', fids: [g] })).cookies;
    await c.request(undefined, ROOT, { action: 'cancel', fids: [f] });
    assert.equal(
      formatActions(c),
      `lrh=[type=10680000 len=152 idx=1/${cf}] fid=[0x200000400:0x2a:0x0] dfid=[0x200000400:0x2a:0x0]` +
        ` compound/cookie=0x${x(cf!)}/0x${x(cf!)} action=ARCHIVE archive#=1 flags=0x0 extent=0x0-0xffffffffffffffff` +
        ` gid=0x0 datalen=9 status=CANCELED data=[7461673D6D]\n` +
        `lrh=[type=10680000 len=136 idx=1/${cg}] fid=[0x200000401:0x7:0x0] dfid=[0x200000401:0x7:0x0]` +
        ` compound/cookie=0x${x(cg!)}/0x${x(cg!)} action=RESTORE archive#=2 flags=0x0 extent=0x0-0xffffffffffffffff` +
        ` gid=0x0 datalen=0 status=WAITING data=[]\n`,
    );
  });
});

test('hsm.active_requests: the STARTED actions with their agent and bytes done', async () => {
  await withCoordinator(async ({ c, host }) => {
    const a = new AgentExport('ct-uuid-1');
    c.registerAgent(a, []);
    const f = { seq: 0x200000402, oid: 0x1, ver: 0 };
    const w = newFid();
    host.addFile(f, { flags: HS.EXISTS | HS.ARCHIVED | HS.RELEASED });
    host.addFile(w);
    const [cf] = (await c.request(undefined, USER, { action: 'restore', fids: [f] })).cookies;
    await c.settled();
    c.control = 'disabled';
    await c.request(undefined, ROOT, { action: 'archive', fids: [w] });
    await c.progress(a, { cookie: cf!, fid: f, phase: 'progress', bytes: 4096 });
    assert.equal(
      formatActiveRequests(c),
      `fid=[0x200000402:0x1:0x0] dfid=[0x200000402:0x1:0x0] compound/cookie=0x${x(cf!)}/0x${x(cf!)}` +
        ' action=RESTORE archive#=1 flags=0x0 extent=0x0-0xffffffffffffffff gid=0x0 data=[] canceled=0 uuid=ct-uuid-1 done=4096\n',
    );
  });
});

test('tunables: read and written in Lustre\'s units, positive integers only', async () => {
  await withCoordinator(async ({ c }) => {
    assert.equal(getTunable(c, 'max_requests'), '3');
    assert.equal(getTunable(c, 'active_request_timeout'), '3600');
    assert.equal(getTunable(c, 'grace_delay'), '60');
    assert.equal(getTunable(c, 'default_archive_id'), '1');
    setTunable(c, 'grace_delay', '30\n');
    assert.equal(c.tunables.graceDelayMs, 30_000);
    setTunable(c, 'max_requests', '0x10');
    assert.equal(c.tunables.maxRequests, 16);
    setTunable(c, 'loop_period', '2');
    assert.equal(c.tunables.loopPeriodMs, 2000);
    for (const bad of ['0', '-1', 'abc', '1.5', '']) {
      assert.throws(() => setTunable(c, 'max_requests', bad), (e: { code: string }) => e.code === 'BAD_VALUE', `'${bad}'`);
    }
    assert.equal(c.tunables.maxRequests, 16);
    assert.throws(() => setTunable(c, 'default_archive_id', '4294967296'), { code: 'BAD_VALUE' });
    assert.throws(() => {
      c.tunables.activeRequestTimeoutMs = 1.5;
    }, { code: 'BAD_VALUE' });
  });
});

test('hsm_control and the parameter list an MDT registers', async () => {
  await withCoordinator(async ({ c }) => {
    const params = new Map(hsmParams(c));
    assert.deepEqual([...params.keys()].sort(), [
      'hsm.actions', 'hsm.active_request_timeout', 'hsm.active_requests', 'hsm.agents', 'hsm.default_archive_id',
      'hsm.grace_delay', 'hsm.group_request_mask', 'hsm.loop_period', 'hsm.max_requests', 'hsm.other_request_mask',
      'hsm.user_request_mask', 'hsm_control',
    ]);
    assert.equal(formatControl(c), 'enabled');
    await params.get('hsm_control')!.set!('shutdown\n');
    assert.equal(c.control, 'shutdown');
    assert.equal(await params.get('hsm_control')!.get(), 'stopped');
    await setControl(c, 'enabled');
    assert.equal(c.control, 'enabled');
    assert.throws(() => setControl(c, 'off'), { code: 'BAD_VALUE' });
    await params.get('hsm.max_requests')!.set!('7');
    assert.equal(await params.get('hsm.max_requests')!.get(), '7');
    assert.equal(await params.get('hsm.user_request_mask')!.get(), 'RESTORE');
    assert.equal(params.get('hsm.agents')!.set, undefined);
  });
});
