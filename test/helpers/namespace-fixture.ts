/**
 * Shared by the namespace tests: a Namespace over a fresh LMDB store in a
 * temp dir, FID allocation, and a consistency check of everything stored.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FID_SEQ_NORMAL, ROOT_FID, fidKey, fidToString, type Fid } from '../../src/common/fid.js';
import type { Inode } from '../../src/common/inode.js';
import type { OstObject, Raid0Layout } from '../../src/common/layout.js';
import { K, nameHash, posFromDentryKey } from '../../src/mds/keys.js';
import { Namespace } from '../../src/mds/namespace.js';
import { openLmdbStore } from '../../src/mds/store/lmdb.js';
import type { MetadataStore } from '../../src/mds/store/types.js';

export const FS_DEFAULT = { stripeSize: 4 * 1024 * 1024, stripeCount: 1 };

export interface Fixture {
  ns: Namespace;
  store: MetadataStore;
  dir: string;
  fids: FidGen;
  /** a Namespace over the same store, as after an MDS restart (no opens) */
  restart(): Promise<Namespace>;
}

export class FidGen {
  private oid = 0;
  constructor(private readonly seq = FID_SEQ_NORMAL) {}
  next(): Fid {
    return { seq: this.seq, oid: ++this.oid, ver: 0 };
  }
}

export async function withNamespace(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stria-ns-'));
  let store = await openLmdbStore(dir);
  try {
    const ns = new Namespace(store, { fsDefault: FS_DEFAULT });
    await ns.init();
    const f: Fixture = {
      ns,
      store,
      dir,
      fids: new FidGen(),
      restart: async () => {
        await store.close();
        store = await openLmdbStore(dir);
        f.store = store;
        const fresh = new Namespace(store, { fsDefault: FS_DEFAULT });
        await fresh.init();
        f.ns = fresh;
        return fresh;
      },
    };
    await fn(f);
    await fsck(f.store);
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function mkLayout(objects: OstObject[], extra: Partial<Raid0Layout> = {}): Raid0Layout {
  return { pattern: 'raid0', stripeSize: 1 << 20, stripeCount: objects.length, stripeOffset: -1, layoutGen: 0, objects, ...extra };
}

export function file(fid: Fid, extra: Record<string, unknown> = {}) {
  return { fid, type: 'reg' as const, mode: 0o644, uid: 1000, gid: 1000, ...extra };
}

export function dir(fid: Fid, extra: Record<string, unknown> = {}) {
  return { fid, type: 'dir' as const, mode: 0o755, uid: 1000, gid: 1000, ...extra };
}

/** Reads every record under `prefix`, page by page. */
export async function scanAll<T>(s: MetadataStore, prefix: string): Promise<Array<[string, T]>> {
  const out: Array<[string, T]> = [];
  let after: string | undefined;
  for (let page = 0; page < 1_000_000; page++) {
    const rows = await s.scan<T>(prefix, after, 5000);
    out.push(...rows);
    if (rows.length < 5000) break;
    after = rows[rows.length - 1]![0];
  }
  return out;
}

/**
 * Checks the whole namespace: every entry points to an inode of its type and
 * sits at its name's hash; link counts match entries; every directory has
 * one entry, in its recorded parent, and reaches the root; unlinked inodes
 * are exactly the orphans; counters and xattr lists agree with the records.
 */
export async function fsck(s: MetadataStore): Promise<{ inodes: number; entries: number }> {
  const inodes = new Map<string, Inode>();
  for (const [key, ino] of await scanAll<Inode>(s, 'i:')) {
    assert.equal(key, K.inode(ino.fid), `inode key ${key} matches its FID`);
    inodes.set(fidKey(ino.fid), ino);
  }
  const root = inodes.get(fidKey(ROOT_FID));
  assert.ok(root, 'root exists');
  assert.deepEqual(root.parent, ROOT_FID, 'root is its own parent');

  const links = new Map<string, number>();
  const subdirs = new Map<string, number>();
  const dirEntryOf = new Map<string, string>();
  let entries = 0;
  for (const [key, e] of await scanAll<{ name: string; fid: Fid; type: string }>(s, 'd:')) {
    entries++;
    const dirKey = key.slice(2, key.lastIndexOf(':'));
    const parent = inodes.get(dirKey);
    assert.ok(parent, `entry ${key} is in an existing directory`);
    assert.equal(parent.type, 'dir', `entry ${key} is in a directory`);
    assert.ok(parent.nlink > 0, `entry '${e.name}' is not in a removed directory`);
    assert.equal(Math.floor(posFromDentryKey(key) / 16), nameHash(e.name), `entry '${e.name}' sits at its hash`);
    const target = inodes.get(fidKey(e.fid));
    assert.ok(target, `entry '${e.name}' in ${dirKey} points to an existing inode ${fidToString(e.fid)}`);
    assert.equal(e.type, target.type, `entry '${e.name}' has its inode's type`);
    links.set(fidKey(e.fid), (links.get(fidKey(e.fid)) ?? 0) + 1);
    if (target.type === 'dir') {
      subdirs.set(dirKey, (subdirs.get(dirKey) ?? 0) + 1);
      assert.ok(!dirEntryOf.has(fidKey(e.fid)), `directory ${fidToString(e.fid)} has one name only`);
      dirEntryOf.set(fidKey(e.fid), dirKey);
    }
  }

  const orphans = new Set((await scanAll<{ fid: Fid }>(s, 'o:')).map(([, o]) => fidKey(o.fid)));
  for (const [k, ino] of inodes) {
    const name = fidToString(ino.fid);
    if (ino.nlink === 0) {
      assert.ok(orphans.has(k), `unlinked inode ${name} is an orphan`);
      assert.equal(links.get(k) ?? 0, 0, `orphan ${name} has no names`);
      continue;
    }
    assert.ok(!orphans.has(k), `linked inode ${name} is not an orphan`);
    if (ino.type === 'dir') {
      assert.equal(ino.nlink, 2 + (subdirs.get(k) ?? 0), `directory ${name} nlink = 2 + subdirectories`);
      if (k !== fidKey(ROOT_FID)) {
        assert.equal(dirEntryOf.get(k), fidKey(ino.parent!), `directory ${name} is named in its parent`);
        let cur = ino;
        for (let depth = 0; fidKey(cur.fid) !== fidKey(ROOT_FID); depth++) {
          assert.ok(depth < 10_000, `directory ${name} reaches the root`);
          cur = inodes.get(fidKey(cur.parent!))!;
          assert.ok(cur, `ancestor of ${name} exists`);
        }
      }
    } else {
      assert.equal(ino.nlink, links.get(k) ?? 0, `${name} nlink = number of names`);
    }
  }
  for (const o of orphans) assert.ok(inodes.has(o), `orphan ${o} has an inode`);
  assert.equal((await s.get<number>(K.inodeCount)) ?? 0, inodes.size, 'inode counter matches');

  const lists = await scanAll<{ names: string[]; bytes: number }>(s, 'xl:');
  const listed = new Set<string>();
  for (const [key, l] of lists) {
    const f = key.slice(3);
    assert.ok(inodes.has(f), `xattr list ${key} belongs to an inode`);
    let bytes = 0;
    for (const n of l.names) {
      const v = await s.get<Buffer>(`x:${f}:${n}`);
      assert.ok(v, `listed xattr ${n} of ${f} exists`);
      bytes += v.length;
      listed.add(`x:${f}:${n}`);
    }
    assert.equal(l.bytes, bytes, `xattr byte total of ${f}`);
  }
  for (const [key] of await scanAll(s, 'x:')) assert.ok(listed.has(key), `xattr ${key} is listed`);
  return { inodes: inodes.size, entries };
}
