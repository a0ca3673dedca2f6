/** Directory default layouts and their inheritance (reference §2.4): the policy functions and the Namespace. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ROOT_FID } from '../src/common/fid.js';
import {
  highestObjects,
  normalizeTemplate,
  resolveTemplate,
  templateForNewDir,
  validateLayout,
} from '../src/mds/layout-policy.js';
import { dir, file, FS_DEFAULT, withNamespace } from './helpers/namespace-fixture.js';

const MiB = 1 << 20;
const fs = { stripeSize: 4 * MiB, stripeCount: 1 };

describe('layout policy', () => {
  test('normalizeTemplate drops "use the default" values and validates the rest', () => {
    assert.deepEqual(normalizeTemplate({ stripeSize: 0, stripeCount: 0, stripeOffset: -1 }), {});
    assert.deepEqual(normalizeTemplate({ pool: 'inherit' }), {});
    assert.deepEqual(normalizeTemplate({ pool: 'none' }), {});
    assert.deepEqual(normalizeTemplate({ pool: 'ignore' }), { pool: 'ignore' });
    assert.deepEqual(normalizeTemplate({ stripeSize: MiB, stripeCount: -1, stripeOffset: 0, pool: 'ssd' }), { stripeSize: MiB, stripeCount: -1, stripeOffset: 0, pool: 'ssd' });
    for (const bad of [null, 'x', [], { stripeSize: 4096 }, { stripeSize: -MiB }, { stripeCount: 2001 }, { stripeCount: 1.5 }, { stripeOffset: -2 }, { stripeOffset: 0xffff }, { pool: 7 }, { pool: '' }, { pool: 'a'.repeat(16) }]) {
      assert.throws(() => normalizeTemplate(bad), JSON.stringify(bad));
    }
  });

  test("templateForNewDir: an explicit template wins; a non-root parent's is copied; the root's is not", () => {
    const parent = { stripeCount: 4 };
    assert.deepEqual(templateForNewDir(false, parent, undefined), { stripeCount: 4 });
    assert.notEqual(templateForNewDir(false, parent, undefined), parent, 'a copy');
    assert.equal(templateForNewDir(true, parent, undefined), undefined);
    assert.equal(templateForNewDir(false, undefined, undefined), undefined);
    assert.deepEqual(templateForNewDir(true, parent, { stripeSize: MiB }), { stripeSize: MiB });
    assert.deepEqual(templateForNewDir(false, parent, { stripeSize: MiB }), { stripeSize: MiB });
  });

  test('resolveTemplate fills unset fields from the root, then the filesystem default', () => {
    assert.deepEqual(resolveTemplate(undefined, undefined, fs), { stripeSize: 4 * MiB, stripeCount: 1, stripeOffset: -1 });
    assert.deepEqual(resolveTemplate(undefined, { stripeCount: 2, pool: 'p' }, fs), { stripeSize: 4 * MiB, stripeCount: 2, stripeOffset: -1, pool: 'p' });
    assert.deepEqual(resolveTemplate({ stripeSize: MiB }, { stripeCount: 2, stripeOffset: 1 }, fs), { stripeSize: MiB, stripeCount: 2, stripeOffset: 1 });
    assert.deepEqual(resolveTemplate({ stripeCount: -1, pool: 'q' }, { stripeCount: 2, pool: 'p' }, fs), { stripeSize: 4 * MiB, stripeCount: -1, stripeOffset: -1, pool: 'q' });
    assert.deepEqual(resolveTemplate({ stripeOffset: 0 }, undefined, fs).stripeOffset, 0);
    assert.equal(resolveTemplate({ pool: 'ignore' }, { pool: 'p' }, fs).pool, undefined, '"ignore" stops pool inheritance');
    assert.equal(resolveTemplate(undefined, { pool: 'ignore' }, fs).pool, undefined);
  });

  test('validateLayout accepts sound layouts and refuses broken ones', () => {
    const good = { pattern: 'raid0', stripeSize: MiB, stripeCount: 2, stripeOffset: -1, layoutGen: 0, objects: [{ ostIdx: 0, seq: 0x100000000, oid: 1 }, { ostIdx: 0, seq: 0x100000000, oid: 2 }] };
    assert.deepEqual(validateLayout(good), good, 'overstriping: two objects on one OST');
    assert.deepEqual(validateLayout({ ...good, objects: [], stripeCount: 2, pattern: 'released' }).objects, []);
    const bad: unknown[] = [
      null,
      { ...good, pattern: 'raid1' },
      { ...good, stripeSize: 0 },
      { ...good, stripeCount: 3 },
      { ...good, stripeCount: 0, objects: [] },
      { ...good, stripeOffset: -5 },
      { ...good, layoutGen: -1 },
      { ...good, objects: 'x' },
      { ...good, objects: [{ ostIdx: 0, seq: 1, oid: 1 }, null] },
      { ...good, pattern: 'released' },
      { ...good, pool: 'ignore' },
      { ...good, pool: 'way-too-long-pool-name' },
    ];
    for (const b of bad) assert.throws(() => validateLayout(b), JSON.stringify(b));
    const stripped = validateLayout({ ...good, extra: 'dropped' });
    assert.equal('extra' in stripped, false);
  });

  test('highestObjects finds the highest id per OST, sequences first', () => {
    const m = highestObjects([
      { ostIdx: 0, seq: 5, oid: 9 },
      { ostIdx: 0, seq: 6, oid: 1 },
      { ostIdx: 1, seq: 5, oid: 3 },
      { ostIdx: 1, seq: 5, oid: 7 },
    ]);
    assert.deepEqual(m, new Map([[0, { seq: 6, oid: 1 }], [1, { seq: 5, oid: 7 }]]));
  });
});

describe('layout inheritance in the namespace', () => {
  test('with no templates anywhere, new files get the filesystem default', () =>
    withNamespace(async ({ ns, fids }) => {
      const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
      const want = { stripeSize: FS_DEFAULT.stripeSize, stripeCount: FS_DEFAULT.stripeCount, stripeOffset: -1 };
      assert.deepEqual(await ns.effectiveLayoutTemplate(ROOT_FID), want);
      assert.deepEqual(await ns.effectiveLayoutTemplate(d.fid), want);
    }));

  test("the root's template is not copied into its subdirectories but applies to them at run time", () =>
    withNamespace(async ({ ns, fids }) => {
      await ns.setDirDefault(ROOT_FID, { stripeCount: 2 });
      const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
      assert.equal(d.dirDefault, undefined, 'not copied');
      assert.equal((await ns.effectiveLayoutTemplate(d.fid)).stripeCount, 2);
      await ns.setDirDefault(ROOT_FID, { stripeCount: 3, pool: 'p' });
      assert.deepEqual(await ns.effectiveLayoutTemplate(d.fid), { stripeSize: FS_DEFAULT.stripeSize, stripeCount: 3, stripeOffset: -1, pool: 'p' }, 'follows later changes to the root');
    }));

  test("another directory's template is copied at mkdir; later changes to it do not reach existing subdirectories", () =>
    withNamespace(async ({ ns, fids }) => {
      const top = await ns.create(ROOT_FID, 'top', dir(fids.next()));
      await ns.setDirDefault(top.fid, { stripeSize: MiB, pool: 'fast' });
      const sub = await ns.create(top.fid, 'sub', dir(fids.next()));
      assert.deepEqual(sub.dirDefault, { stripeSize: MiB, pool: 'fast' });
      const subsub = await ns.create(sub.fid, 'subsub', dir(fids.next()));
      assert.deepEqual(subsub.dirDefault, { stripeSize: MiB, pool: 'fast' }, 'copied down the tree');
      await ns.setDirDefault(top.fid, { stripeSize: 2 * MiB });
      assert.deepEqual((await ns.getattr(sub.fid)).dirDefault, { stripeSize: MiB, pool: 'fast' });
      const later = await ns.create(top.fid, 'later', dir(fids.next()));
      assert.deepEqual(later.dirDefault, { stripeSize: 2 * MiB });
      const f = await ns.create(top.fid, 'file', file(fids.next()));
      assert.equal(f.dirDefault, undefined, 'files carry no template');
    }));

  test("unset fields of a directory's template come from the root's, then the filesystem default", () =>
    withNamespace(async ({ ns, fids }) => {
      await ns.setDirDefault(ROOT_FID, { stripeCount: 4, stripeOffset: 2, pool: 'rootpool' });
      const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
      await ns.setDirDefault(d.fid, { stripeSize: 8 * MiB });
      assert.deepEqual(await ns.effectiveLayoutTemplate(d.fid), { stripeSize: 8 * MiB, stripeCount: 4, stripeOffset: 2, pool: 'rootpool' });
      await ns.setDirDefault(d.fid, { stripeSize: 8 * MiB, pool: 'ignore' });
      assert.deepEqual(await ns.effectiveLayoutTemplate(d.fid), { stripeSize: 8 * MiB, stripeCount: 4, stripeOffset: 2 });
      await ns.setDirDefault(d.fid, { pool: 'inherit' });
      assert.equal((await ns.effectiveLayoutTemplate(d.fid)).pool, 'rootpool');
    }));

  test('a template given at mkdir is used instead of the copy', () =>
    withNamespace(async ({ ns, fids }) => {
      const top = await ns.create(ROOT_FID, 'top', dir(fids.next(), { dirDefault: { stripeCount: 2 } }));
      assert.deepEqual(top.dirDefault, { stripeCount: 2 });
      const sub = await ns.create(top.fid, 'sub', dir(fids.next(), { dirDefault: { stripeCount: 6, stripeOffset: -1 } }));
      assert.deepEqual(sub.dirDefault, { stripeCount: 6 });
      const plain = await ns.create(ROOT_FID, 'plain', dir(fids.next(), { dirDefault: { stripeCount: 0 } }));
      assert.equal(plain.dirDefault, undefined, 'an all-default template is no template');
    }));

  test('removing a template falls back to the root and filesystem default', () =>
    withNamespace(async ({ ns, fids }) => {
      const top = await ns.create(ROOT_FID, 'top', dir(fids.next(), { dirDefault: { stripeCount: 5 } }));
      await ns.setDirDefault(top.fid, undefined);
      assert.equal((await ns.effectiveLayoutTemplate(top.fid)).stripeCount, FS_DEFAULT.stripeCount);
      const sub = await ns.create(top.fid, 'sub', dir(fids.next()));
      assert.equal(sub.dirDefault, undefined);
    }));

  test('effectiveLayoutTemplate needs a directory', () =>
    withNamespace(async ({ ns, fids }) => {
      const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
      await assert.rejects(ns.effectiveLayoutTemplate(f.fid), (e: Error & { code?: string }) => e.code === 'ENOTDIR');
      await assert.rejects(ns.effectiveLayoutTemplate(fids.next()), (e: Error & { code?: string }) => e.code === 'ENOENT');
    }));
});
