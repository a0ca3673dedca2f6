/**
 * The MDT changelog over both real metadata stores (embedded LMDB, and Redis when
 * redis-server is installed): records are kept only while a user is registered, numbered
 * in append order without gaps (also under concurrent appends), filtered by the mask,
 * purged once every user cleared them, and survive a restart with the index, users and mask.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/common/log.js';
import { openLmdbStore } from '../src/mds/store/lmdb.js';
import { openRedisStore } from '../src/mds/store/redis.js';
import { findRedisServer, REDIS_MISSING, RedisServer } from './helpers/redis-server.js';
import type { MetadataStore } from '../src/mds/store/types.js';
import { CL, type ChangelogInput } from '../src/mds/changelog-types.js';
import {
  Changelog, CHANGELOG_DEFAULT_MASK, formatChangelogMask, parseChangelogMask,
} from '../src/mds/changelog.js';
import type { StriaError } from '../src/common/errno.js';

const base = mkdtempSync(join(tmpdir(), 'stria-changelog-'));
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

/** A backend: `open(id)` opens (or reopens) the store named id. */
interface Backend {
  name: string;
  open(id: string): Promise<MetadataStore>;
}
const backends: Backend[] = [{ name: 'lmdb', open: (id) => openLmdbStore(join(base, id)) }];
let redis: RedisServer | undefined;
if (findRedisServer()) {
  redis = await RedisServer.start();
  const server = redis;
  const run = randomUUID().slice(0, 8);
  backends.push({ name: 'redis', open: (id) => openRedisStore(server.url, { keyPrefix: `cl${run}${id}:` }) });
} else {
  test('redis: the changelog over a Redis store', { skip: REDIS_MISSING }, () => undefined);
}
after(() => redis?.stop());

async function openChangelog(backend: Backend, id: string): Promise<{ store: MetadataStore; cl: Changelog }> {
  const store = await backend.open(id);
  const cl = new Changelog(store, { mdtName: 'testfs-MDT0000', log: silentLogger() });
  await cl.init();
  return { store, cl };
}

async function fresh(backend: Backend): Promise<{ dir: string; store: MetadataStore; cl: Changelog }> {
  const dir = `mdt${n++}`;
  return { dir, ...(await openChangelog(backend, dir)) };
}

const file = (oid: number, name = `f${oid}`): ChangelogInput => ({
  type: CL.CREAT, tfid: { seq: 0x200000400, oid, ver: 0 }, pfid: { seq: 0x200000007, oid: 1, ver: 0 }, name, uid: 500, gid: 500,
});

async function all(cl: Changelog, after = 0) {
  const out = [];
  for (let page = 0; page < 10_000; page++) {
    const r = await cl.read(after);
    out.push(...r.records);
    if (r.records.length === 0 || r.eof) return out;
    after = r.records[r.records.length - 1]!.index;
  }
  throw new Error('read never reached the end');
}

function code(e: unknown): string {
  return (e as StriaError).code;
}

for (const b of backends) {
  test(`${b.name}: nothing is recorded while no user is registered`, async () => {
    const { store, cl } = await fresh(b);
    try {
      await cl.append(file(1));
      assert.equal(cl.currentIndex, 0);
      assert.deepEqual((await cl.read(0)).records, []);
      assert.equal(cl.enabled, false);
    } finally {
      await cl.close();
      await store.close();
    }
  });

  test(`${b.name}: concurrent appends are numbered in call order, without gaps, and kept in order`, async () => {
    const { store, cl } = await fresh(b);
    try {
      assert.equal(await cl.register(), 'cl1');
      await Promise.all(Array.from({ length: 2000 }, (_, i) => cl.append(file(i + 1))));
      const recs = await all(cl);
      assert.equal(recs.length, 2000);
      recs.forEach((r, i) => {
        assert.equal(r.index, i + 1);
        assert.equal(r.tfid.oid, i + 1, 'record i is the i-th append');
        assert.equal(r.name, `f${i + 1}`);
        assert.ok(r.time.sec > 0);
      });
      assert.equal(cl.currentIndex, 2000);
    } finally {
      await cl.close();
      await store.close();
    }
  });

  test(`${b.name}: the mask filters record types: default without OPEN/ATIME, edits with +/-, full lists, ALL`, async () => {
    const { store, cl } = await fresh(b);
    try {
      await cl.register();
      assert.equal(cl.mask, CHANGELOG_DEFAULT_MASK);
      assert.ok(!formatChangelogMask(cl.mask).includes('OPEN '));
      assert.ok(formatChangelogMask(cl.mask).startsWith('MARK CREAT MKDIR HLINK SLINK MKNOD UNLNK RMDIR RENME RNMTO CLOSE '));
      const tfid = { seq: 0x200000400, oid: 9, ver: 0 };
      await cl.append({ type: CL.OPEN, tfid });
      await cl.append({ type: CL.ATIME, tfid });
      await cl.append({ type: CL.HSM, tfid, flags: 0 });
      assert.deepEqual((await all(cl)).map((r) => r.type), [CL.HSM]);

      await cl.setMask('+open -hsm');
      await cl.append({ type: CL.OPEN, tfid });
      await cl.append({ type: CL.HSM, tfid });
      assert.deepEqual((await all(cl)).map((r) => r.type), [CL.HSM, CL.OPEN]);

      await cl.setMask('CREAT UNLNK');
      assert.equal(formatChangelogMask(cl.mask), 'MARK CREAT UNLNK ');
      await cl.setMask('ALL');
      assert.ok(formatChangelogMask(cl.mask).includes('NOPEN'));
      await assert.rejects(cl.setMask('+bogus'), (e) => code(e) === 'BAD_VALUE' && /bogus/.test((e as Error).message));
      assert.equal(parseChangelogMask('-MARK', CHANGELOG_DEFAULT_MASK) & 1, 1, 'MARK always stays');
    } finally {
      await cl.close();
      await store.close();
    }
  });

  test(`${b.name}: records go once every user cleared them; clear 0 means the newest; bad clears are refused`, async () => {
    const { store, cl } = await fresh(b);
    try {
      const a = await cl.register();
      const b = await cl.register();
      assert.deepEqual([a, b], ['cl1', 'cl2']);
      for (let i = 1; i <= 10; i++) await cl.append(file(i));
      await cl.clear(a, 5);
      assert.equal((await all(cl)).length, 10, 'cl2 still holds every record');
      await cl.clear(b, 3);
      assert.deepEqual((await all(cl)).map((r) => r.index), [4, 5, 6, 7, 8, 9, 10]);
      await cl.clear(b, 2);
      assert.equal(cl.listUsers().find((u) => u.id === b)!.endrec, 3, 'clearing backwards changes nothing');
      await assert.rejects(cl.clear(a, 11), (e) => code(e) === 'CHANGELOG_RANGE');
      await assert.rejects(cl.clear('cl9', 1), (e) => code(e) === 'NO_CHANGELOG_USER');
      await assert.rejects(cl.clear('bob', 1), (e) => code(e) === 'BAD_CHANGELOG_USER');

      await cl.deregister(b);
      assert.deepEqual((await all(cl)).map((r) => r.index), [6, 7, 8, 9, 10], 'cl1 had cleared up to 5');
      await cl.clear(a, 0);
      assert.deepEqual(await all(cl), []);
      assert.deepEqual(cl.listUsers().map((u) => [u.id, u.endrec]), [['cl1', 10]]);

      await cl.append(file(11));
      await cl.deregister(a);
      assert.deepEqual(await all(cl), [], 'the last user going takes every record');
      await cl.append(file(12));
      assert.deepEqual(await all(cl), [], 'and nothing more is kept');
      await assert.rejects(cl.deregister(a), (e) => code(e) === 'NO_CHANGELOG_USER');
    } finally {
      await cl.close();
      await store.close();
    }
  });

  test(`${b.name}: a new user starts after the records already there`, async () => {
    const { store, cl } = await fresh(b);
    try {
      const a = await cl.register();
      await cl.append(file(1));
      await cl.append(file(2));
      const b = await cl.register();
      assert.equal(cl.listUsers().find((u) => u.id === b)!.endrec, 2);
      await cl.clear(a, 0);
      assert.deepEqual(await all(cl), [], 'nobody needs 1 and 2 any more');
    } finally {
      await cl.close();
      await store.close();
    }
  });

  test(`${b.name}: users, records, index and mask survive a restart; the index never goes back`, async () => {
    const { dir, store, cl } = await fresh(b);
    await cl.register();
    await cl.register();
    await cl.setMask('+open');
    for (let i = 1; i <= 7; i++) await cl.append(file(i));
    await cl.clear('cl1', 7);
    await cl.clear('cl2', 4);
    await cl.close();
    await store.close();

    const { store: store2, cl: cl2 } = await openChangelog(b, dir);
    try {
      assert.equal(cl2.currentIndex, 7);
      assert.ok(formatChangelogMask(cl2.mask).includes('OPEN'));
      assert.deepEqual(cl2.listUsers().map((u) => [u.id, u.endrec]), [['cl1', 7], ['cl2', 4]]);
      assert.deepEqual((await all(cl2)).map((r) => r.index), [5, 6, 7]);
      await cl2.append(file(8));
      assert.deepEqual((await all(cl2)).map((r) => r.index), [5, 6, 7, 8]);
      assert.equal(await cl2.register(), 'cl3', 'user ids are not reused');
      await cl2.deregister('cl1');
      await cl2.deregister('cl2');
      await cl2.deregister('cl3');
      await cl2.close();
      await store2.close();

      const { store: store3, cl: cl3 } = await openChangelog(b, dir);
      assert.equal(cl3.currentIndex, 8, 'with no user and no record left, the index still goes on from 8');
      await cl3.register();
      await cl3.append(file(9));
      assert.deepEqual((await all(cl3)).map((r) => r.index), [9]);
      await cl3.close();
      await store3.close();
    } catch (e) {
      await store2.close().catch(() => undefined);
      throw e;
    }
  });

  test(`${b.name}: changelog_users reads as Lustre prints it`, async () => {
    const { store, cl } = await fresh(b);
    try {
      await cl.register();
      await cl.register();
      for (let i = 1; i <= 8; i++) await cl.append(file(i));
      await cl.clear('cl2', 8);
      const lines = cl.formatUsers().split('\n');
      assert.equal(lines[0], 'current index: 8');
      assert.equal(lines[1], 'ID    index (idle seconds)');
      assert.match(lines[2]!, /^cl1   0 \(\d+\)$/);
      assert.match(lines[3]!, /^cl2   8 \(\d+\)$/);
      assert.equal(lines[4], '');
    } finally {
      await cl.close();
      await store.close();
    }
  });
}
