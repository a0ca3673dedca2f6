/** Namespace: FID sequences, per-OST last-used object ids, the filesystem record, inode counts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FID_SEQ_NORMAL, ROOT_FID } from '../src/common/fid.js';
import { file, mkLayout, withNamespace } from './helpers/namespace-fixture.js';

const code = (c: string) => (e: Error & { code?: string }) => e.code === c;

test('allocSequence hands out sequences from 0x200000400 upward, never twice, across restarts', () =>
  withNamespace(async (fx) => {
    assert.equal(await fx.ns.allocSequence(), FID_SEQ_NORMAL);
    const many = await Promise.all(Array.from({ length: 50 }, () => fx.ns.allocSequence()));
    assert.equal(new Set(many).size, 50);
    assert.deepEqual([...many].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => FID_SEQ_NORMAL + 1 + i));
    const ns = await fx.restart();
    assert.equal(await ns.allocSequence(), FID_SEQ_NORMAL + 51);
  }));

test('recordObjectsUsed keeps the highest object id per OST and never goes back', () =>
  withNamespace(async (fx) => {
    const { ns } = fx;
    assert.deepEqual(await ns.lastObjectsUsed(), new Map());
    await ns.recordObjectsUsed(0, 0x100000000, 100);
    await ns.recordObjectsUsed(0, 0x100000000, 50);
    await ns.recordObjectsUsed(7, 0x100070000, 3);
    await ns.recordObjectsUsed(7, 0x100070001, 1); // a newer sequence wins over a bigger oid
    await ns.recordObjectsUsed(7, 0x100070000, 9999);
    const expected = new Map([
      [0, { seq: 0x100000000, oid: 100 }],
      [7, { seq: 0x100070001, oid: 1 }],
    ]);
    assert.deepEqual(await ns.lastObjectsUsed(), expected);
    assert.deepEqual(await (await fx.restart()).lastObjectsUsed(), expected, 'persisted');
  }));

test('objects in a created or re-laid-out file raise the last-used record in the same transaction', () =>
  withNamespace(async ({ ns, fids }) => {
    await ns.recordObjectsUsed(1, 0x100010000, 10);
    await ns.create(ROOT_FID, 'f', file(fids.next(), {
      layout: mkLayout([
        { ostIdx: 1, seq: 0x100010000, oid: 40 },
        { ostIdx: 2, seq: 0x100020000, oid: 5 },
      ]),
    }));
    const g = await ns.create(ROOT_FID, 'g', file(fids.next(), { layout: mkLayout([{ ostIdx: 1, seq: 0x100010000, oid: 20 }]) }));
    assert.deepEqual(await ns.lastObjectsUsed(), new Map([
      [1, { seq: 0x100010000, oid: 40 }],
      [2, { seq: 0x100020000, oid: 5 }],
    ]));
    await ns.setLayout(g.fid, mkLayout([{ ostIdx: 3, seq: 0x100030000, oid: 8 }]));
    assert.deepEqual((await ns.lastObjectsUsed()).get(3), { seq: 0x100030000, oid: 8 });
  }));

test('recordObjectsUsed validates its arguments', () =>
  withNamespace(async ({ ns }) => {
    await assert.rejects(ns.recordObjectsUsed(-1, 1, 1), code('EINVAL'));
    await assert.rejects(ns.recordObjectsUsed(70000, 1, 1), code('EINVAL'));
    await assert.rejects(ns.recordObjectsUsed(0, 1, 2 ** 32), code('EINVAL'));
    await assert.rejects(ns.recordObjectsUsed(0, 'x' as never, 1), code('EINVAL'));
    assert.deepEqual(await ns.lastObjectsUsed(), new Map());
  }));

test('the filesystem record is set once and keeps its creation time', () =>
  withNamespace(async (fx) => {
    assert.equal(await fx.ns.fsRecord(), undefined);
    await fx.ns.setFsRecord({ name: 'lustre', uuid: 'f3c2-uuid' });
    const r = await fx.ns.fsRecord();
    assert.equal(r?.name, 'lustre');
    assert.equal(r?.uuid, 'f3c2-uuid');
    assert.ok(r && r.created.sec > 0);
    await fx.ns.setFsRecord({ name: 'lustre', uuid: 'f3c2-uuid' });
    assert.deepEqual((await (await fx.restart()).fsRecord())?.created, r.created);
    for (const bad of [{ name: '', uuid: 'u' }, { name: 'toolongname', uuid: 'u' }, { name: 'a b', uuid: 'u' }, { name: 'ok', uuid: '' }, { name: 'ok', uuid: 'x'.repeat(65) }]) {
      await assert.rejects(fx.ns.setFsRecord(bad), (e: Error) => e.name === 'StriaError', JSON.stringify(bad));
    }
  }));

test('counts follows creates and deletes', () =>
  withNamespace(async ({ ns, fids }) => {
    assert.deepEqual(await ns.counts(), { inodes: 1 });
    for (let i = 0; i < 10; i++) await ns.create(ROOT_FID, `f${i}`, file(fids.next()));
    assert.deepEqual(await ns.counts(), { inodes: 11 });
    for (let i = 0; i < 4; i++) await ns.unlink(ROOT_FID, `f${i}`, { dir: false });
    assert.deepEqual(await ns.counts(), { inodes: 7 });
  }));

test('a Namespace refuses a bad filesystem default', async () => {
  const { Namespace } = await import('../src/mds/namespace.js');
  const store = {} as never;
  assert.throws(() => new Namespace(store, { fsDefault: { stripeSize: 1000, stripeCount: 1 } }));
  assert.throws(() => new Namespace(store, { fsDefault: { stripeSize: 1 << 20, stripeCount: 0 } }));
  assert.throws(() => new Namespace(store, undefined as never));
});
