/**
 * Namespace: rename semantics, case by case over one tree:
 *
 *   /a/        f, h (a hard link of f), sub/deep/
 *   /b/        g, empty/, full/x
 *   /c         (a file with two objects)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_FID, type Fid } from '../src/common/fid.js';
import type { Namespace } from '../src/mds/namespace.js';
import type { MetadataStore } from '../src/mds/store/types.js';
import { dir, file, mkLayout, scanAll, withNamespace, type FidGen } from './helpers/namespace-fixture.js';

interface Tree {
  a: Fid;
  f: Fid;
  sub: Fid;
  deep: Fid;
  b: Fid;
  g: Fid;
  empty: Fid;
  full: Fid;
  x: Fid;
  c: Fid;
}

const gObjects = [{ ostIdx: 2, seq: 0x100020000, oid: 11 }];

async function build(ns: Namespace, fids: FidGen): Promise<Tree> {
  const a = (await ns.create(ROOT_FID, 'a', dir(fids.next()))).fid;
  const f = (await ns.create(a, 'f', file(fids.next()))).fid;
  await ns.link(f, a, 'h');
  const sub = (await ns.create(a, 'sub', dir(fids.next()))).fid;
  const deep = (await ns.create(sub, 'deep', dir(fids.next()))).fid;
  const b = (await ns.create(ROOT_FID, 'b', dir(fids.next()))).fid;
  const g = (await ns.create(b, 'g', file(fids.next(), { layout: mkLayout(gObjects) }))).fid;
  const empty = (await ns.create(b, 'empty', dir(fids.next()))).fid;
  const full = (await ns.create(b, 'full', dir(fids.next()))).fid;
  const x = (await ns.create(full, 'x', file(fids.next()))).fid;
  const c = (await ns.create(ROOT_FID, 'c', file(fids.next(), { layout: mkLayout([{ ostIdx: 0, seq: 0x100000000, oid: 3 }]) }))).fid;
  return { a, f, sub, deep, b, g, empty, full, x, c };
}

type Flags = { noReplace?: boolean; exchange?: boolean };
interface Case {
  name: string;
  from: (t: Tree) => [Fid, string];
  to: (t: Tree) => [Fid, string];
  flags?: Flags;
  error?: string;
  check?: (ns: Namespace, t: Tree, r: { replaced?: { fid: Fid; nlink: number }; destroy: unknown[] }) => Promise<void>;
}

const fidOf = async (ns: Namespace, parent: Fid, name: string) => (await ns.lookup(parent, name)).fid;
const nlink = async (ns: Namespace, fid: Fid) => (await ns.getattr(fid)).nlink;
const gone = async (ns: Namespace, parent: Fid, name: string) =>
  assert.rejects(ns.lookup(parent, name), (e: Error & { code?: string }) => e.code === 'ENOENT', `${name} is gone`);

const cases: Case[] = [
  {
    name: 'file to a new name in the same directory',
    from: (t) => [t.a, 'f'],
    to: (t) => [t.a, 'f2'],
    check: async (ns, t, r) => {
      assert.deepEqual(await fidOf(ns, t.a, 'f2'), t.f);
      await gone(ns, t.a, 'f');
      assert.equal(r.replaced, undefined);
      assert.equal(await nlink(ns, t.f), 2, 'a rename does not change the link count');
    },
  },
  {
    name: 'file to another directory',
    from: () => [ROOT_FID, 'c'],
    to: (t) => [t.a, 'c2'],
    check: async (ns, t) => {
      assert.deepEqual(await fidOf(ns, t.a, 'c2'), t.c);
      await gone(ns, ROOT_FID, 'c');
    },
  },
  {
    name: 'file over a file: the target is unlinked and its objects handed back',
    from: () => [ROOT_FID, 'c'],
    to: (t) => [t.b, 'g'],
    check: async (ns, t, r) => {
      assert.deepEqual(await fidOf(ns, t.b, 'g'), t.c);
      assert.deepEqual(r.replaced?.fid, t.g);
      assert.equal(r.replaced?.nlink, 0);
      assert.deepEqual(r.destroy, gObjects);
      await assert.rejects(ns.getattr(t.g));
    },
  },
  {
    name: 'file over a hard link of itself does nothing',
    from: (t) => [t.a, 'f'],
    to: (t) => [t.a, 'h'],
    check: async (ns, t, r) => {
      assert.deepEqual(await fidOf(ns, t.a, 'f'), t.f);
      assert.deepEqual(await fidOf(ns, t.a, 'h'), t.f);
      assert.equal(await nlink(ns, t.f), 2);
      assert.deepEqual(r, { destroy: [] });
    },
  },
  {
    name: 'a name onto itself does nothing',
    from: () => [ROOT_FID, 'c'],
    to: () => [ROOT_FID, 'c'],
    check: async (ns, t) => assert.deepEqual(await fidOf(ns, ROOT_FID, 'c'), t.c),
  },
  { name: 'file over a directory', from: () => [ROOT_FID, 'c'], to: (t) => [t.b, 'empty'], error: 'EISDIR' },
  { name: 'directory over a file', from: (t) => [t.a, 'sub'], to: () => [ROOT_FID, 'c'], error: 'ENOTDIR' },
  {
    name: 'directory over an empty directory, across directories',
    from: (t) => [t.a, 'sub'],
    to: (t) => [t.b, 'empty'],
    check: async (ns, t, r) => {
      assert.deepEqual(await fidOf(ns, t.b, 'empty'), t.sub);
      assert.deepEqual(r.replaced?.fid, t.empty);
      assert.equal(r.replaced?.nlink, 0);
      await assert.rejects(ns.getattr(t.empty));
      assert.equal(await nlink(ns, t.a), 2);
      assert.equal(await nlink(ns, t.b), 4, 'b: . .. and two subdirectories');
      assert.deepEqual((await ns.lookup(t.sub, '..')).fid, t.b);
    },
  },
  {
    name: 'directory over an empty directory in the same parent',
    from: (t) => [t.b, 'full'],
    to: (t) => [t.b, 'empty'],
    check: async (ns, t) => {
      assert.deepEqual(await fidOf(ns, t.b, 'empty'), t.full);
      assert.equal(await nlink(ns, t.b), 3);
    },
  },
  { name: 'directory over a non-empty directory', from: (t) => [t.a, 'sub'], to: (t) => [t.b, 'full'], error: 'ENOTEMPTY' },
  { name: 'directory into its own subtree', from: () => [ROOT_FID, 'a'], to: (t) => [t.deep, 'a'], error: 'EINVAL' },
  { name: 'directory into itself', from: () => [ROOT_FID, 'a'], to: (t) => [t.a, 'a'], error: 'EINVAL' },
  {
    name: 'directory to another directory: nlinks and .. follow',
    from: (t) => [t.a, 'sub'],
    to: (t) => [t.b, 'moved'],
    check: async (ns, t) => {
      assert.equal(await nlink(ns, t.a), 2);
      assert.equal(await nlink(ns, t.b), 5);
      assert.deepEqual((await ns.getattr(t.sub)).parent, t.b);
      assert.deepEqual((await ns.lookup(t.sub, '..')).fid, t.b);
      assert.deepEqual(await fidOf(ns, t.sub, 'deep'), t.deep, 'the subtree moves along');
    },
  },
  {
    name: 'directory up to an ancestor',
    from: (t) => [t.sub, 'deep'],
    to: () => [ROOT_FID, 'up'],
    check: async (ns, t) => {
      assert.equal(await nlink(ns, t.sub), 2);
      assert.equal(await nlink(ns, ROOT_FID), 5, "root: . .. a b up");
    },
  },
  { name: 'missing source', from: (t) => [t.a, 'nope'], to: (t) => [t.b, 'x'], error: 'ENOENT' },
  { name: 'source parent not a directory', from: (t) => [t.c, 'x'], to: (t) => [t.b, 'x'], error: 'ENOTDIR' },
  { name: 'missing target parent', from: () => [ROOT_FID, 'c'], to: (t) => [{ ...t.x, oid: 999 }, 'x'], error: 'ENOENT' },
  { name: 'noReplace over an existing name', from: () => [ROOT_FID, 'c'], to: (t) => [t.b, 'g'], flags: { noReplace: true }, error: 'EEXIST' },
  {
    name: 'noReplace to a free name',
    from: () => [ROOT_FID, 'c'],
    to: (t) => [t.b, 'free'],
    flags: { noReplace: true },
    check: async (ns, t) => assert.deepEqual(await fidOf(ns, t.b, 'free'), t.c),
  },
  {
    name: 'exchange a file and a directory across directories',
    from: () => [ROOT_FID, 'c'],
    to: (t) => [t.a, 'sub'],
    flags: { exchange: true },
    check: async (ns, t, r) => {
      assert.deepEqual(await fidOf(ns, ROOT_FID, 'c'), t.sub);
      assert.deepEqual(await fidOf(ns, t.a, 'sub'), t.c);
      assert.equal((await ns.lookup(ROOT_FID, 'c')).type, 'dir');
      assert.deepEqual((await ns.getattr(t.sub)).parent, ROOT_FID);
      assert.equal(await nlink(ns, ROOT_FID), 5);
      assert.equal(await nlink(ns, t.a), 2);
      assert.deepEqual(r, { destroy: [] });
    },
  },
  {
    name: 'exchange two directories across directories',
    from: (t) => [t.a, 'sub'],
    to: (t) => [t.b, 'full'],
    flags: { exchange: true },
    check: async (ns, t) => {
      assert.deepEqual(await fidOf(ns, t.a, 'sub'), t.full);
      assert.deepEqual(await fidOf(ns, t.b, 'full'), t.sub);
      assert.deepEqual((await ns.getattr(t.full)).parent, t.a);
      assert.deepEqual((await ns.getattr(t.sub)).parent, t.b);
      assert.equal(await nlink(ns, t.a), 3);
      assert.equal(await nlink(ns, t.b), 4);
    },
  },
  {
    name: 'exchange two files in one directory',
    from: (t) => [t.b, 'g'],
    to: (t) => [t.b, 'empty'],
    flags: { exchange: true },
    check: async (ns, t) => {
      assert.deepEqual(await fidOf(ns, t.b, 'g'), t.empty);
      assert.deepEqual(await fidOf(ns, t.b, 'empty'), t.g);
    },
  },
  { name: 'exchange with a missing target', from: () => [ROOT_FID, 'c'], to: (t) => [t.b, 'nope'], flags: { exchange: true }, error: 'ENOENT' },
  { name: 'exchange a directory with its own descendant', from: () => [ROOT_FID, 'a'], to: (t) => [t.sub, 'deep'], flags: { exchange: true }, error: 'EINVAL' },
  { name: 'exchange and noReplace together', from: () => [ROOT_FID, 'c'], to: (t) => [t.b, 'g'], flags: { exchange: true, noReplace: true }, error: 'EINVAL' },
  { name: "renaming '.'", from: (t) => [t.a, '.'], to: (t) => [t.b, 'dot'], error: 'EBUSY' },
  { name: "renaming onto '..'", from: () => [ROOT_FID, 'c'], to: (t) => [t.b, '..'], error: 'EBUSY' },
  { name: 'a target name with a slash', from: () => [ROOT_FID, 'c'], to: (t) => [t.b, 'x/y'], error: 'BAD_NAME' },
];

async function snapshot(store: MetadataStore): Promise<unknown> {
  return scanAll(store, '');
}

for (const c of cases) {
  test(`rename: ${c.name}${c.error ? ` -> ${c.error}` : ''}`, () =>
    withNamespace(async ({ ns, fids, store }) => {
      const t = await build(ns, fids);
      const [sp, sn] = c.from(t);
      const [dp, dn] = c.to(t);
      if (c.error) {
        const before = await snapshot(store);
        await assert.rejects(ns.rename(sp, sn, dp, dn, c.flags), (e: Error & { code?: string }) => {
          assert.equal(e.code, c.error, e.message);
          return true;
        });
        assert.deepEqual(await snapshot(store), before, 'a failed rename changes nothing');
        return;
      }
      const r = await ns.rename(sp, sn, dp, dn, c.flags);
      await c.check!(ns, t, r);
    }));
}

test('rename updates ctime of the moved inode and times of both parents', () =>
  withNamespace(async ({ ns, fids }) => {
    const t = await build(ns, fids);
    await new Promise((r) => setTimeout(r, 2));
    await ns.rename(ROOT_FID, 'c', t.a, 'c');
    const moved = await ns.getattr(t.c);
    for (const d of [ROOT_FID, t.a]) {
      const ino = await ns.getattr(d);
      assert.deepEqual(ino.mtime, moved.ctime);
      assert.deepEqual(ino.ctime, moved.ctime);
    }
  }));

test('concurrent renames back and forth keep the tree consistent', () =>
  withNamespace(async ({ ns, fids }) => {
    const t = await build(ns, fids);
    const ops: Array<Promise<unknown>> = [];
    for (let i = 0; i < 60; i++) {
      ops.push(ns.rename(t.a, 'sub', t.b, 'sub').catch(() => undefined));
      ops.push(ns.rename(t.b, 'sub', t.a, 'sub').catch(() => undefined));
      ops.push(ns.rename(t.b, 'full', t.sub, 'full').catch(() => undefined));
      ops.push(ns.rename(t.sub, 'full', t.b, 'full').catch(() => undefined));
    }
    await Promise.all(ops);
    // withNamespace runs fsck: one name per directory, link counts, parents
  }));
