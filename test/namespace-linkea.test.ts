/**
 * Namespace: every inode remembers its names (Lustre's linkEA) in the same
 * transactions that create, link, unlink and rename them, and fid2path walks
 * those names up to the root.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_FID, fidKey, type Fid } from '../src/common/fid.js';
import { K, LINKEA_MAX_LINKS, SCHEMA_VERSION, type LinkRecord } from '../src/mds/keys.js';
import type { Namespace } from '../src/mds/namespace.js';
import type { MetadataStore } from '../src/mds/store/types.js';
import { dir, file, scanAll, withNamespace } from './helpers/namespace-fixture.js';

const code = (c: string) => (e: Error & { code?: string }) => e.code === c;

const paths = async (ns: Namespace, fid: Fid) => (await ns.fid2path(fid)).paths.sort();

/**
 * The stored names agree with the directory entries: each inode's record is
 * exactly the entries naming it (a subset of them once it overflowed), and
 * no record outlives its inode.
 */
async function checkLinks(store: MetadataStore): Promise<number> {
  const named = new Map<string, Set<string>>();
  for (const [key, e] of await scanAll<{ name: string; fid: Fid }>(store, 'd:')) {
    const dirKey = key.slice(2, key.lastIndexOf(':'));
    const set = named.get(fidKey(e.fid)) ?? new Set<string>();
    set.add(`${dirKey}/${e.name}`);
    named.set(fidKey(e.fid), set);
  }
  const records = await scanAll<LinkRecord>(store, K.linksPrefix);
  const seen = new Set<string>();
  for (const [key, rec] of records) {
    const f = key.slice(K.linksPrefix.length);
    seen.add(f);
    assert.ok(await store.get(`i:${f}`), `names record ${key} belongs to an inode`);
    const recorded = rec.links.map((l) => `${fidKey(l.parent)}/${l.name}`);
    assert.equal(new Set(recorded).size, recorded.length, `no name twice in ${key}`);
    assert.ok(recorded.length <= LINKEA_MAX_LINKS, `${key} is bounded`);
    const actual = named.get(f) ?? new Set<string>();
    if (rec.overflow) {
      // names dropped to make room are not found again (as Lustre): the record is a subset
      for (const r of recorded) assert.ok(actual.has(r), `recorded name ${r} of ${f} exists`);
    } else {
      assert.deepEqual(new Set(recorded), actual, `names of ${f} match its entries`);
    }
  }
  for (const f of named.keys()) assert.ok(seen.has(f), `named inode ${f} has a names record`);
  return records.length;
}

test('create, mkdir and symlink record the name; fid2path walks to the root', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const a = await ns.create(ROOT_FID, 'a', dir(fids.next()));
    const b = await ns.create(a.fid, 'b', dir(fids.next()));
    const f = await ns.create(b.fid, 'f', file(fids.next()));
    const l = await ns.create(a.fid, 'l', { fid: fids.next(), type: 'lnk', mode: 0o777, uid: 0, gid: 0, target: 'b/f' });
    assert.deepEqual(await ns.fid2path(f.fid), { paths: ['a/b/f'] });
    assert.deepEqual(await ns.fid2path(b.fid), { paths: ['a/b'] });
    assert.deepEqual(await ns.fid2path(l.fid), { paths: ['a/l'] });
    assert.deepEqual(await ns.fid2path(ROOT_FID), { paths: [''] }, 'the root is the empty path');
    assert.deepEqual(await ns.links(f.fid), { links: [{ parent: b.fid, name: 'f' }], overflow: false });
    assert.deepEqual(await ns.links(ROOT_FID), { links: [], overflow: false });
    await assert.rejects(ns.fid2path(fids.next()), code('ENOENT'), 'unknown FIDs are ENOENT');
    await assert.rejects(ns.fid2path({ seq: -1, oid: 0, ver: 0 }), code('BAD_FID'));
    assert.equal(await checkLinks(store), 4);
  }));

test('hard links add names, unlink removes exactly the name it removes', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const d1 = await ns.create(ROOT_FID, 'd1', dir(fids.next()));
    const d2 = await ns.create(ROOT_FID, 'd2', dir(fids.next()));
    const f = await ns.create(d1.fid, 'f', file(fids.next()));
    await ns.link(f.fid, d2.fid, 'g');
    await ns.link(f.fid, ROOT_FID, 'h');
    assert.deepEqual(await paths(ns, f.fid), ['d1/f', 'd2/g', 'h']);
    await ns.unlink(d2.fid, 'g', { dir: false });
    assert.deepEqual(await paths(ns, f.fid), ['d1/f', 'h']);
    await checkLinks(store);
    await ns.unlink(d1.fid, 'f', { dir: false });
    await ns.unlink(ROOT_FID, 'h', { dir: false });
    assert.equal(await store.get(K.links(f.fid)), undefined, 'the record goes with the inode');
    await assert.rejects(ns.fid2path(f.fid), code('ENOENT'));
    await checkLinks(store);
  }));

test('an open-unlinked file has no names and no path', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const f = await ns.create(ROOT_FID, 'f', file(fids.next()));
    await ns.open(f.fid);
    await ns.unlink(ROOT_FID, 'f', { dir: false });
    assert.deepEqual(await ns.links(f.fid), { links: [], overflow: false });
    await assert.rejects(ns.fid2path(f.fid), code('ENOENT'));
    await ns.close(f.fid);
    await checkLinks(store);
  }));

test('rename moves the name; renaming a directory moves every path below it', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const a = await ns.create(ROOT_FID, 'a', dir(fids.next()));
    const b = await ns.create(ROOT_FID, 'b', dir(fids.next()));
    const sub = await ns.create(a.fid, 'sub', dir(fids.next()));
    const f = await ns.create(sub.fid, 'f', file(fids.next()));
    await ns.link(f.fid, a.fid, 'f2');
    await ns.rename(sub.fid, 'f', sub.fid, 'renamed');
    assert.deepEqual(await paths(ns, f.fid), ['a/f2', 'a/sub/renamed']);
    await ns.rename(a.fid, 'sub', b.fid, 'moved');
    assert.deepEqual(await paths(ns, f.fid), ['a/f2', 'b/moved/renamed']);
    assert.deepEqual(await ns.links(sub.fid), { links: [{ parent: b.fid, name: 'moved' }], overflow: false });
    await ns.rename(b.fid, 'moved', ROOT_FID, 'top');
    assert.deepEqual(await paths(ns, f.fid), ['a/f2', 'top/renamed']);
    await checkLinks(store);
  }));

test('rename over an existing name takes that name from the replaced inode', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    const src = await ns.create(ROOT_FID, 'src', file(fids.next()));
    const victim = await ns.create(d.fid, 'dst', file(fids.next()));
    await ns.link(victim.fid, ROOT_FID, 'victim-too');
    await ns.rename(ROOT_FID, 'src', d.fid, 'dst');
    assert.deepEqual(await paths(ns, src.fid), ['d/dst']);
    assert.deepEqual(await paths(ns, victim.fid), ['victim-too'], 'the replaced file keeps only its other name');
    const lone = await ns.create(ROOT_FID, 'lone', file(fids.next()));
    await ns.rename(ROOT_FID, 'victim-too', ROOT_FID, 'lone');
    await assert.rejects(ns.fid2path(lone.fid), code('ENOENT'), 'a replaced last name deletes the inode');
    assert.deepEqual(await paths(ns, victim.fid), ['lone']);
    const e1 = await ns.create(d.fid, 'empty', dir(fids.next()));
    const e2 = await ns.create(ROOT_FID, 'e2', dir(fids.next()));
    await ns.rename(ROOT_FID, 'e2', d.fid, 'empty');
    assert.equal(await store.get(K.links(e1.fid)), undefined, 'a replaced directory loses its record');
    assert.deepEqual(await paths(ns, e2.fid), ['d/empty']);
    await checkLinks(store);
  }));

test('exchange swaps the two names, directories included', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const a = await ns.create(ROOT_FID, 'a', dir(fids.next()));
    const b = await ns.create(ROOT_FID, 'b', dir(fids.next()));
    const f = await ns.create(a.fid, 'x', file(fids.next()));
    const sub = await ns.create(b.fid, 'y', dir(fids.next()));
    const g = await ns.create(sub.fid, 'g', file(fids.next()));
    await ns.rename(a.fid, 'x', b.fid, 'y', { exchange: true });
    assert.deepEqual(await paths(ns, f.fid), ['b/y']);
    assert.deepEqual(await paths(ns, sub.fid), ['a/x']);
    assert.deepEqual(await paths(ns, g.fid), ['a/x/g']);
    await checkLinks(store);
  }));

test('rmdir drops the directory record', () =>
  withNamespace(async ({ ns, fids, store }) => {
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    await ns.unlink(ROOT_FID, 'd', { dir: true });
    assert.equal(await store.get(K.links(d.fid)), undefined);
    assert.equal(await checkLinks(store), 0);
  }));

test(`past ${LINKEA_MAX_LINKS} names the oldest are dropped and the record says so`, () =>
  withNamespace(async ({ ns, fids, store }) => {
    const f = await ns.create(ROOT_FID, 'n0', file(fids.next()));
    const total = LINKEA_MAX_LINKS + 6;
    for (let i = 1; i < total; i++) await ns.link(f.fid, ROOT_FID, `n${i}`);
    const { links, overflow } = await ns.links(f.fid);
    assert.equal(overflow, true);
    assert.equal(links.length, LINKEA_MAX_LINKS);
    assert.deepEqual(links.map((l) => l.name), Array.from({ length: LINKEA_MAX_LINKS }, (_, i) => `n${i + total - LINKEA_MAX_LINKS}`), 'the newest names are kept');
    assert.equal((await paths(ns, f.fid)).length, LINKEA_MAX_LINKS);
    await checkLinks(store);
    // removing names the record no longer holds changes nothing; removing held ones shrinks it
    await ns.unlink(ROOT_FID, 'n0', { dir: false });
    await ns.unlink(ROOT_FID, `n${total - 1}`, { dir: false });
    assert.equal((await ns.links(f.fid)).links.length, LINKEA_MAX_LINKS - 1);
    await checkLinks(store);
    await ns.rename(ROOT_FID, 'n1', ROOT_FID, 'renamed-dropped');
    assert.ok((await paths(ns, f.fid)).includes('renamed-dropped'), 'a renamed name that had been dropped is recorded again');
    await checkLinks(store);
  }));

test('fid2path pages by reply size and starts at any link', () =>
  withNamespace(async ({ ns, fids }) => {
    const d = await ns.create(ROOT_FID, 'd'.repeat(200), dir(fids.next()));
    const f = await ns.create(d.fid, 'f0', file(fids.next()));
    for (let i = 1; i < 5; i++) await ns.link(f.fid, d.fid, `f${i}`);
    const one = await ns.fid2path(f.fid, { maxBytes: 300 });
    assert.equal(one.paths.length, 1, 'a page holds at least one path even when it alone is over budget');
    assert.equal(one.next, 1);
    const rest = await ns.fid2path(f.fid, { from: 1, maxBytes: 500 });
    assert.equal(rest.paths.length, 2);
    assert.equal(rest.next, 3);
    assert.deepEqual(await ns.fid2path(f.fid, { from: 4 }), { paths: [`${'d'.repeat(200)}/f4`] });
    assert.deepEqual(await ns.fid2path(f.fid, { from: 9 }), { paths: [] });
    await assert.rejects(ns.fid2path(f.fid, { from: -1 }), code('BAD_LINKNO'));
  }));

test('a path longer than PATH_MAX is EOVERFLOW', () =>
  withNamespace(async ({ ns, fids }) => {
    let parent = ROOT_FID;
    for (let i = 0; i < 17; i++) parent = (await ns.create(parent, `${i}`.padEnd(250, 'x'), dir(fids.next()))).fid;
    const f = await ns.create(parent, 'f', file(fids.next()));
    await assert.rejects(ns.fid2path(f.fid), code('PATH_TOO_LONG'));
  }));

test('a schema 1 store gets its names rebuilt from the directory entries at start', () =>
  withNamespace(async (fx) => {
    const { ns, fids } = fx;
    const d = await ns.create(ROOT_FID, 'd', dir(fids.next()));
    const f = await ns.create(d.fid, 'f', file(fids.next()));
    await ns.link(f.fid, ROOT_FID, 'g');
    // what a version 1 MDS left behind: no names records
    await fx.store.transact(async (tx) => {
      for (const [key] of await tx.scan(K.linksPrefix, undefined, 100)) tx.del(key);
      tx.put(K.schema, { version: 1 });
    });
    const fresh = await fx.restart();
    assert.deepEqual(await fx.store.get(K.schema), { version: SCHEMA_VERSION });
    assert.deepEqual(await paths(fresh, f.fid), ['d/f', 'g']);
    assert.deepEqual(await paths(fresh, d.fid), ['d']);
    assert.equal(await checkLinks(fx.store), 2);
  }));

test('names stay exact through a long random mix of namespace operations', () =>
  withNamespace(async ({ ns, fids, store }) => {
    // deterministic pseudo-random sequence (mulberry32)
    let seed = 0x5eed;
    const rnd = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    };
    const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
    const dirs: Fid[] = [ROOT_FID];
    const names = ['a', 'b', 'c', 'd', 'e'];
    const entry = async (): Promise<{ parent: Fid; name: string; fid: Fid; type: string } | undefined> => {
      const parent = pick(dirs);
      const page = await ns.readdir(parent, 0, 100);
      if (page.entries.length === 0) return undefined;
      const e = pick(page.entries);
      return { parent, name: e.name, fid: e.fid, type: e.type };
    };
    let done = 0;
    for (let step = 0; step < 400; step++) {
      const op = rnd();
      try {
        if (op < 0.25) {
          const isDir = rnd() < 0.3;
          const c = await ns.create(pick(dirs), pick(names), isDir ? dir(fids.next()) : file(fids.next()));
          if (isDir) dirs.push(c.fid);
        } else if (op < 0.45) {
          const e = await entry();
          if (e && e.type !== 'dir') await ns.link(e.fid, pick(dirs), pick(names));
        } else if (op < 0.6) {
          const e = await entry();
          if (e) await ns.unlink(e.parent, e.name, { dir: e.type === 'dir' });
        } else {
          const e = await entry();
          if (e) await ns.rename(e.parent, e.name, pick(dirs), pick(names), { exchange: rnd() < 0.3 });
        }
        done++;
      } catch (err) {
        const c = (err as { code?: string }).code;
        assert.ok(['EEXIST', 'ENOENT', 'ENOTEMPTY', 'EINVAL', 'EISDIR', 'ENOTDIR', 'EPERM'].includes(c ?? ''), `unexpected ${String(err)}`);
      }
      if (step % 50 === 49) await checkLinks(store);
    }
    assert.ok(done > 100, `enough operations succeeded (${done})`);
    await checkLinks(store);
    // every path fid2path gives leads back to the inode
    for (const [key] of await scanAll(store, K.linksPrefix)) {
      const fid = (await store.get<{ fid: Fid }>(`i:${key.slice(2)}`))!.fid;
      for (const p of await paths(ns, fid)) {
        let cur: Fid = ROOT_FID;
        for (const part of p.split('/')) cur = (await ns.lookup(cur, part)).fid;
        assert.deepEqual(cur, fid, `path ${p} leads to its inode`);
      }
    }
  }));
