/** readdir: hash-ordered, stable cookies; big directories page completely while entries come and go. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_FID, type Fid } from '../src/common/fid.js';
import type { DirEntry } from '../src/common/inode.js';
import { K, MAX_COOKIE, dentryPos, nameHash } from '../src/mds/keys.js';
import type { Namespace } from '../src/mds/namespace.js';
import type { MetadataStore } from '../src/mds/store/types.js';
import { dir, file, withNamespace, type FidGen } from './helpers/namespace-fixture.js';
import { mulberry32 } from './helpers/prng.js';

async function createMany(ns: Namespace, fids: FidGen, parent: Fid, names: string[], concurrency: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const name = names[next++]!;
      await ns.create(parent, name, file(fids.next()));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

test('a 100,000-entry directory lists every name exactly once, in pages of varying size, while other names come and go', { timeout: 600_000 }, () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'big', dir(fids.next()));
    const names = Array.from({ length: 100_000 }, (_, i) => `file-${i}`);
    await createMany(ns, fids, d.fid, names, 256);

    const rand = mulberry32(12345);
    const seen = new Map<string, number>();
    let cookie = 0;
    let lastCookie = 0;
    let churn = 0;
    let eof = false;
    const background: Array<Promise<unknown>> = [];
    for (let page = 0; page < 100_000 && !eof; page++) {
      const limit = 1 + Math.floor(rand() * (rand() < 0.2 ? 5 : 3000));
      const r = await ns.readdir(d.fid, cookie, limit);
      assert.ok(r.entries.length <= limit);
      if (!r.eof) assert.equal(r.entries.length, limit, 'a page short of eof is full');
      for (const e of r.entries) {
        assert.ok(e.cookie > lastCookie, 'cookies increase');
        assert.ok(Number.isSafeInteger(e.cookie) && e.cookie < 2 ** 53);
        lastCookie = e.cookie;
        assert.ok(!seen.has(e.name), `${e.name} listed twice`);
        seen.set(e.name, e.cookie);
        assert.notEqual(e.name, '.');
        assert.notEqual(e.name, '..');
      }
      if (r.entries.length > 0) cookie = r.entries[r.entries.length - 1]!.cookie;
      eof = r.eof;
      // unrelated names appear and disappear while the listing is under way
      for (let k = 0; k < 3; k++) {
        const n = churn++;
        background.push(ns.create(d.fid, `churn-${n}`, file(fids.next())));
        if (n % 2 === 1) background.push(ns.unlink(d.fid, `churn-${n - 1}`, { dir: false }).catch(() => undefined));
      }
    }
    await Promise.all(background);
    assert.ok(eof, 'the listing ended');
    for (const n of names) assert.ok(seen.has(n), `${n} was listed`);
    assert.equal([...seen.keys()].filter((n) => !n.startsWith('churn-')).length, names.length);
  }));

test('cookies are stable: resuming after an entry that was removed continues where it was', () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    await createMany(ns, fids, d.fid, Array.from({ length: 300 }, (_, i) => `n${i}`), 16);
    const all = await listAll(ns, d.fid, 1000);
    assert.equal(all.length, 300);
    const first = (await ns.readdir(d.fid, 0, 100)).entries;
    assert.deepEqual(first, all.slice(0, 100), 'pages agree with a single listing');
    const resumeAt = first[99]!;
    await ns.unlink(d.fid, resumeAt.name, { dir: false });
    await ns.unlink(d.fid, all[100]!.name, { dir: false });
    const rest = await listAll(ns, d.fid, 37, resumeAt.cookie);
    assert.deepEqual(rest, all.slice(101));
    const again = await listAll(ns, d.fid, 1000);
    for (const e of again) assert.equal(e.cookie, all.find((a) => a.name === e.name)!.cookie, `${e.name} kept its cookie`);
  }));

test('entries carry name, FID and type; an empty directory is eof at once', () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    assert.deepEqual(await ns.readdir(d.fid, 0, 10), { entries: [], eof: true });
    const sub = await ns.create(d.fid, 'sub', dir(fids.next()));
    const f = await ns.create(d.fid, 'f', file(fids.next()));
    const l = await ns.create(d.fid, 'l', { fid: fids.next(), type: 'lnk', mode: 0o777, uid: 0, gid: 0, target: 'x' });
    const r = await ns.readdir(d.fid, 0, 10);
    assert.equal(r.eof, true);
    const byName = new Map(r.entries.map((e) => [e.name, e]));
    assert.deepEqual(byName.get('sub')?.fid, sub.fid);
    assert.equal(byName.get('sub')?.type, 'dir');
    assert.deepEqual(byName.get('f')?.fid, f.fid);
    assert.equal(byName.get('f')?.type, 'reg');
    assert.equal(byName.get('l')?.type, 'lnk');
    assert.deepEqual(byName.get('l')?.fid, l.fid);
    const exact = await ns.readdir(d.fid, 0, 3);
    assert.equal(exact.eof, true, 'a page that holds the last entry is eof');
    const short = await ns.readdir(d.fid, 0, 2);
    assert.equal(short.eof, false);
    const last = await ns.readdir(d.fid, r.entries[2]!.cookie, 5);
    assert.deepEqual(last, { entries: [], eof: true });
  }));

test('readdir validates its arguments', () =>
  withNamespace(async ({ ns, fids }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    const code = (c: string) => (e: Error & { code?: string }) => e.code === c;
    await assert.rejects(ns.readdir(f.fid, 0, 10), code('ENOTDIR'));
    await assert.rejects(ns.readdir(fids.next(), 0, 10), code('ENOENT'));
    await assert.rejects(ns.readdir(ROOT_FID, -1, 10), code('BAD_COOKIE'));
    await assert.rejects(ns.readdir(ROOT_FID, 1.5, 10), code('BAD_COOKIE'));
    await assert.rejects(ns.readdir(ROOT_FID, 2 ** 53, 10), code('BAD_COOKIE'));
    await assert.rejects(ns.readdir(ROOT_FID, 0, 0), code('BAD_LIMIT'));
    await assert.rejects(ns.readdir(ROOT_FID, 0, Infinity), code('BAD_LIMIT'));
    assert.deepEqual((await ns.readdir(ROOT_FID, MAX_COOKIE, 10)).eof, true);
    const huge = await ns.readdir(ROOT_FID, 0, 1e9);
    assert.equal(huge.entries.length, 1, 'a huge limit is capped, not refused');
  }));

const plantedInode = (fid: Fid) => {
  const t = { sec: 1, nsec: 0 };
  return { fid, type: 'reg', mode: 0o100644, uid: 0, gid: 0, nlink: 1, size: 0, rdev: 0, atime: t, mtime: t, ctime: t, btime: t };
};

/**
 * Real 48-bit SHA-256 collisions are too costly to search for in a test, so
 * entries under other names are planted in the slots of one name's hash, as
 * colliding names would sit there; they are removed again before the end.
 */
async function plant(store: MetadataStore, dirFid: Fid, hash: number, slots: number[], fids: FidGen): Promise<Array<{ key: string; fid: Fid }>> {
  const planted = slots.map((slot) => ({ key: K.dentry(dirFid, dentryPos(hash, slot)), fid: fids.next(), slot }));
  await store.transact(async (tx) => {
    for (const p of planted) {
      tx.put(K.inode(p.fid), plantedInode(p.fid));
      tx.put(p.key, { name: `squatter${p.slot}`, fid: p.fid, type: 'reg' });
    }
    tx.put(K.inodeCount, ((await tx.get<number>(K.inodeCount)) ?? 0) + planted.length);
  });
  return planted;
}

async function unplant(store: MetadataStore, planted: Array<{ key: string; fid: Fid }>): Promise<void> {
  await store.transact(async (tx) => {
    for (const p of planted) {
      tx.del(p.key);
      tx.del(K.inode(p.fid));
    }
    tx.put(K.inodeCount, ((await tx.get<number>(K.inodeCount)) ?? 0) - planted.length);
  });
}

test('names whose hashes collide get separate slots: found, listed in slot order, slots reused', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    const h = nameHash('target');
    const [s0, s2] = await plant(store, d.fid, h, [0, 2], fids);
    const target = await ns.create(d.fid, 'target', file(fids.next()));
    assert.deepEqual((await store.get<{ fid: Fid }>(K.dentry(d.fid, dentryPos(h, 1))))?.fid, target.fid, 'the first free slot was taken');
    assert.deepEqual((await ns.lookup(d.fid, 'target')).fid, target.fid);
    await assert.rejects(ns.create(d.fid, 'target', file(fids.next())), (e: Error & { code?: string }) => e.code === 'EEXIST');
    const listed = await listAll(ns, d.fid, 1);
    assert.deepEqual(listed.map((e) => e.name), ['squatter0', 'target', 'squatter2'], 'colliding names list in slot order');
    await unplant(store, [s0!]);
    assert.deepEqual((await ns.lookup(d.fid, 'target')).fid, target.fid, 'a hole before it does not hide it');
    await ns.rename(d.fid, 'target', d.fid, 'renamed');
    await assert.rejects(ns.lookup(d.fid, 'target'));
    const again = await ns.create(d.fid, 'target', file(fids.next()));
    assert.deepEqual((await store.get<{ fid: Fid }>(K.dentry(d.fid, dentryPos(h, 0))))?.fid, again.fid, 'the lowest free slot is reused');
    await ns.unlink(d.fid, 'target', { dir: false });
    await unplant(store, [s2!]);
  }));

test('when all slots of a hash are taken, a new colliding name is refused cleanly', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    const planted = await plant(store, d.fid, nameHash('unlucky'), Array.from({ length: 16 }, (_, i) => i), fids);
    await assert.rejects(ns.create(d.fid, 'unlucky', file(fids.next())), (e: Error & { code?: string }) => e.code === 'DIR_HASH_FULL');
    assert.equal((await listAll(ns, d.fid, 100)).length, 16);
    await unplant(store, planted);
  }));

async function listAll(ns: Namespace, d: Fid, pageSize: number, from = 0): Promise<DirEntry[]> {
  const out: DirEntry[] = [];
  let cookie = from;
  for (let page = 0; page < 100_000; page++) {
    const r = await ns.readdir(d, cookie, pageSize);
    out.push(...r.entries);
    if (r.entries.length > 0) cookie = r.entries[r.entries.length - 1]!.cookie;
    if (r.eof) break;
  }
  return out;
}
