/**
 * The OST object store on disk: Lustre's object layout, precreation with a
 * durable LAST_ID, orphan cleanup, sparse I/O, punch, destroy, statfs, and the
 * checks that keep a directory from being served wrongly (missing, foreign,
 * not a target, already served).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, statfs, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, StriaError } from '../src/common/errno.js';
import { FID_SEQ_NORMAL, OST_SEQ_MAX_OID, idifSeq } from '../src/common/fid.js';
import { ObjectStore, utimeArg } from '../src/oss/objstore.js';
import { objectLocation } from '../src/oss/objpath.js';
import { LOCK_FILE, MARKER_FILE } from '../src/oss/target-dir.js';

const FS = 'testfs';
const tmpRoots: string[] = [];
const openStores: ObjectStore[] = [];

after(async () => {
  for (const s of openStores) await s.close().catch(() => undefined);
  for (const d of tmpRoots) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'stria-objstore-'));
  tmpRoots.push(d);
  return d;
}

async function openStore(dir: string, index: number, maxOpenFiles?: number): Promise<ObjectStore> {
  const s = await ObjectStore.open(dir, { fsname: FS, index, maxOpenFiles });
  openStores.push(s);
  return s;
}

async function rejectsWith(p: Promise<unknown>, errno: keyof typeof Errno, code: string, text?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof StriaError, `expected a StriaError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.errno, Errno[errno], e.message);
    if (text) assert.ok(e.message.includes(text), `message '${e.message}' should mention '${text}'`);
    return true;
  });
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

test('objects live at O/<seq>/d<oid%32>/<oid>: IDIF in O/0 with decimal names, normal sequences in hex', async () => {
  const dir = await tempDir();
  const store = await openStore(dir, 2);
  const idif = idifSeq(2);
  const r = await store.precreate(idif, 40);
  assert.deepEqual(r, { seq: idif, first: 1, last: 40 });
  for (const oid of [1, 31, 32, 33, 40]) {
    const st = await stat(join(dir, 'O', '0', `d${oid % 32}`, String(oid)));
    assert.ok(st.isFile());
    assert.equal(st.size, 0);
  }
  assert.deepEqual((await readdir(join(dir, 'O', '0', 'd0'))).sort(), ['32']);

  const seq = FID_SEQ_NORMAL + 5;
  await store.precreate(seq, 45);
  // oid 42 = 0x2a in hex, in d10 (42 % 32)
  assert.ok(await exists(join(dir, 'O', seq.toString(16), 'd10', '2a')));
  assert.ok(!(await exists(join(dir, 'O', seq.toString(16), 'd10', '42'))));
  assert.equal((await readdir(join(dir, 'O', seq.toString(16)))).filter((n) => /^d\d+$/.test(n)).length, 32);

  // IDIF carries object id bits 32..47 in the low 16 bits of the sequence.
  const loc = objectLocation(idif + 1, 5, 2, FS);
  assert.equal(loc.path, `O/0/d5/${2 ** 32 + 5}`);
  assert.equal(objectLocation(0, 77, 2, FS).path, 'O/0/d13/77');
});

test('sequences this OST does not store are refused', async () => {
  const store = await openStore(await tempDir(), 2);
  await rejectsWith(store.precreate(idifSeq(3), 1), 'EINVAL', 'WRONG_SEQUENCE', 'testfs-OST0003');
  await rejectsWith(store.read(idifSeq(3), 1, 0, 1), 'EINVAL', 'WRONG_SEQUENCE');
  await rejectsWith(store.precreate(0x200000007, 1), 'EINVAL', 'BAD_SEQUENCE');
  await rejectsWith(store.precreate(12345, 1), 'EINVAL', 'BAD_SEQUENCE');
  await rejectsWith(store.precreate(idifSeq(2) + 1, 1), 'EINVAL', 'BAD_SEQUENCE');
  await rejectsWith(store.precreate(idifSeq(2), 0), 'EINVAL', 'BAD_REQUEST');
  await rejectsWith(store.precreate(idifSeq(2), 20001), 'EINVAL', 'BAD_REQUEST');
});

test('LAST_ID is a durable little-endian u64 and precreation continues from it after reopen', async () => {
  const dir = await tempDir();
  const seq = idifSeq(1);
  let store = await openStore(dir, 1);
  assert.equal(await store.lastId(seq), 0);
  assert.deepEqual(await store.precreate(seq, 10), { seq, first: 1, last: 10 });
  assert.deepEqual(await store.precreate(seq, 3), { seq, first: 11, last: 13 });
  const raw = await readFile(join(dir, 'O', '0', 'LAST_ID'));
  assert.equal(raw.length, 8);
  assert.equal(raw.readBigUInt64LE(0), 13n);
  await store.close();

  store = await openStore(dir, 1);
  assert.equal(await store.lastId(seq), 13);
  assert.deepEqual(await store.precreate(seq, 5), { seq, first: 14, last: 18 });
  // sequence 0 (legacy MDT0 objects) shares O/0 and its LAST_ID with the IDIF sequence
  assert.deepEqual(await store.precreate(0, 1), { seq: 0, first: 19, last: 19 });
});

test('a sequence stops at OST_SEQ_MAX_OID: a short batch, then ENOSPC', async () => {
  const dir = await tempDir();
  const seq = FID_SEQ_NORMAL;
  let store = await openStore(dir, 0);
  await store.precreate(seq, 1);
  await store.close();
  const last = Buffer.alloc(8);
  last.writeBigUInt64LE(BigInt(OST_SEQ_MAX_OID - 2));
  await writeFile(join(dir, 'O', seq.toString(16), 'LAST_ID'), last);
  store = await openStore(dir, 0);
  assert.deepEqual(await store.precreate(seq, 10), { seq, first: OST_SEQ_MAX_OID - 1, last: OST_SEQ_MAX_OID });
  await rejectsWith(store.precreate(seq, 1), 'ENOSPC', 'SEQUENCE_EXHAUSTED');
});

test('orphan cleanup destroys objects above the last used oid and precreation reuses those oids', async () => {
  const dir = await tempDir();
  const seq = idifSeq(0);
  const store = await openStore(dir, 0);
  await store.precreate(seq, 40);
  await store.write(seq, 35, 0, Buffer.from('orphan data'));
  assert.equal(await store.deleteOrphans(seq, 30), 10);
  assert.equal(await store.lastId(seq), 30);
  for (let oid = 31; oid <= 40; oid++) await rejectsWith(store.getattr(seq, oid), 'ENOENT', 'NO_SUCH_OBJECT');
  assert.equal((await store.getattr(seq, 30)).size, 0);
  assert.deepEqual(await store.precreate(seq, 10), { seq, first: 31, last: 40 });
  assert.equal((await store.read(seq, 35, 0, 100)).length, 0, 'a recreated object is empty');
  // nothing above LAST_ID: nothing to do
  assert.equal(await store.deleteOrphans(seq, 40), 0);
});

test('orphan cleanup never lowers LAST_ID below what the MDT used, nor deletes more than a precreate window', async () => {
  const dir = await tempDir();
  const seq = idifSeq(0);
  const store = await openStore(dir, 0);
  await store.precreate(seq, 5);
  // The MDT used oids this OST never recorded (restored OST): they are never handed out again.
  assert.equal(await store.deleteOrphans(seq, 100), 0);
  assert.equal(await store.lastId(seq), 100);
  assert.deepEqual(await store.precreate(seq, 2), { seq, first: 101, last: 102 });
  // Far more "orphans" than any precreate window: the MDT's record is suspect, nothing is deleted.
  assert.equal(await store.deleteOrphans(seq, 30_000), 0);
  assert.equal(await store.deleteOrphans(seq, 101), 0);
  assert.equal(await store.lastId(seq), 30_000);
  assert.equal((await store.getattr(seq, 102)).size, 0, 'object above the claimed last used oid kept');
});

test('reads return the bytes present: holes are zeros, short only at EOF', async () => {
  const dir = await tempDir();
  const seq = idifSeq(0);
  const store = await openStore(dir, 0);
  await store.precreate(seq, 1);
  const MiB = 1024 * 1024;
  assert.equal(await store.write(seq, 1, 4 * MiB, Buffer.from('hello')), 5);
  const attr = await store.getattr(seq, 1);
  assert.equal(attr.size, 4 * MiB + 5);
  assert.ok(attr.blocks * 512 < MiB, `a 4 MiB hole is not allocated (blocks ${attr.blocks})`);

  assert.deepEqual(await store.read(seq, 1, 0, 16), Buffer.alloc(16));
  assert.deepEqual(await store.read(seq, 1, 4 * MiB - 2, 100), Buffer.from([0, 0, ...Buffer.from('hello')]));
  assert.equal((await store.read(seq, 1, 4 * MiB + 5, 10)).length, 0);
  assert.equal((await store.read(seq, 1, 100 * MiB, 10)).length, 0);
  assert.equal((await store.read(seq, 1, 0, 0)).length, 0);
  const whole = await store.read(seq, 1, 0, 8 * MiB);
  assert.equal(whole.length, 4 * MiB + 5);
  assert.equal(whole.subarray(4 * MiB).toString(), 'hello');

  await rejectsWith(store.read(seq, 1, -1, 10), 'EINVAL', 'BAD_REQUEST');
  await rejectsWith(store.read(seq, 1, 0, 64 * MiB + 1), 'EINVAL', 'BAD_REQUEST');
  await rejectsWith(store.read(seq, 1, 2 ** 53 - 1, 2), 'EINVAL', 'BAD_REQUEST');
  await rejectsWith(store.read(seq, 1, 1.5, 2), 'EINVAL', 'BAD_REQUEST');
});

test('writes need a precreated object and land at their offset; sync writes and syncs succeed', async () => {
  const dir = await tempDir();
  const seq = idifSeq(0);
  const store = await openStore(dir, 0);
  await store.precreate(seq, 2);
  await rejectsWith(store.write(seq, 3, 0, Buffer.from('x')), 'ENOENT', 'NO_SUCH_OBJECT', '0x3');
  assert.ok(!(await exists(join(dir, 'O', '0', 'd3', '3'))), 'a write never creates an object');
  await rejectsWith(store.write(seq, 1, -5, Buffer.from('x')), 'EINVAL', 'BAD_REQUEST');

  await store.write(seq, 1, 0, Buffer.from('abcdef'), true);
  await store.write(seq, 1, 2, Buffer.from('XY'));
  assert.equal((await store.read(seq, 1, 0, 100)).toString(), 'abXYef');
  assert.equal((await readFile(join(dir, 'O', '0', 'd1', '1'))).toString(), 'abXYef');
  await store.sync(seq, 1);
  await store.sync(seq);
  await store.sync();
  await rejectsWith(store.sync(seq, 9), 'ENOENT', 'NO_SUCH_OBJECT');
  await rejectsWith(store.sync(undefined, 1), 'EINVAL', 'BAD_REQUEST');
});

test('concurrent writes to distinct ranges of one object all land', async () => {
  const store = await openStore(await tempDir(), 0);
  const seq = idifSeq(0);
  await store.precreate(seq, 1);
  const parts = Array.from({ length: 64 }, (_, i) => Buffer.alloc(1000, i + 1));
  await Promise.all(parts.map((p, i) => store.write(seq, 1, i * 1000, p)));
  assert.deepEqual(await store.read(seq, 1, 0, 64_000), Buffer.concat(parts));
});

test('open object files stay within the cache bound, and data written through evicted handles is intact', async (t) => {
  const dir = await tempDir();
  const store = await openStore(dir, 0, 4);
  const seq = idifSeq(0);
  await store.precreate(seq, 20);
  for (let oid = 1; oid <= 20; oid++) await store.write(seq, oid, 0, Buffer.from(`object ${oid}`));
  await store.sync();
  for (let oid = 1; oid <= 20; oid++) assert.equal((await store.read(seq, oid, 0, 100)).toString(), `object ${oid}`);
  await store.sync();

  if (!(await exists('/proc/self/fd'))) return t.skip('no /proc/self/fd here');
  const open: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(join('/proc/self/fd', fd)).catch(() => '');
    if (target.startsWith(join(dir, 'O'))) open.push(target);
  }
  assert.ok(open.length <= 4, `${open.length} object files open: ${open.join(', ')}`);
  assert.equal(new Set(open).size, open.length, 'one handle per object');
});

test('punch shrinks and grows objects; a grown range reads as zeros', async () => {
  const store = await openStore(await tempDir(), 0);
  const seq = idifSeq(0);
  await store.precreate(seq, 1);
  await store.write(seq, 1, 0, Buffer.alloc(100, 7));
  assert.equal((await store.punch(seq, 1, 10)).size, 10);
  assert.deepEqual(await store.read(seq, 1, 0, 100), Buffer.alloc(10, 7));
  assert.equal((await store.punch(seq, 1, 1000)).size, 1000);
  assert.deepEqual(await store.read(seq, 1, 0, 2000), Buffer.concat([Buffer.alloc(10, 7), Buffer.alloc(990)]));
  assert.equal((await store.punch(seq, 1, 0)).size, 0);
  await rejectsWith(store.punch(seq, 1, -1), 'EINVAL', 'BAD_REQUEST');
  await rejectsWith(store.punch(seq, 2, 0), 'ENOENT', 'NO_SUCH_OBJECT');
});

test('destroy unlinks the object; a missing object is ENOENT', async () => {
  const dir = await tempDir();
  const store = await openStore(dir, 0);
  const seq = idifSeq(0);
  await store.precreate(seq, 2);
  await store.write(seq, 2, 0, Buffer.from('data'));
  await store.destroy(seq, 2);
  assert.ok(!(await exists(join(dir, 'O', '0', 'd2', '2'))));
  await rejectsWith(store.getattr(seq, 2), 'ENOENT', 'NO_SUCH_OBJECT');
  await rejectsWith(store.read(seq, 2, 0, 4), 'ENOENT', 'NO_SUCH_OBJECT');
  await rejectsWith(store.destroy(seq, 2), 'ENOENT', 'NO_SUCH_OBJECT');
  await store.sync();
  assert.ok(await exists(join(dir, 'O', '0', 'd1', '1')), 'other objects stay');
});

test('setattr stores atime and mtime to the microsecond, pre-1970 included', async () => {
  const store = await openStore(await tempDir(), 0);
  const seq = idifSeq(0);
  await store.precreate(seq, 1);
  const before = await store.getattr(seq, 1);
  const a = await store.setattr(seq, 1, { mtime: { sec: 1_000_000_000, nsec: 123_456_789 } });
  assert.deepEqual(a.mtime, { sec: 1_000_000_000, nsec: 123_456_000 });
  assert.equal(a.atime.sec, before.atime.sec, 'atime kept');
  const b = await store.setattr(seq, 1, { atime: { sec: -5, nsec: 500_000_000 }, mtime: { sec: 1_700_000_000, nsec: 999_999_999 } });
  assert.deepEqual(b.atime, { sec: -5, nsec: 500_000_000 });
  assert.deepEqual(b.mtime, { sec: 1_700_000_000, nsec: 999_999_000 });
  assert.deepEqual(await store.getattr(seq, 1), b);
  assert.equal(utimeArg({ sec: -1, nsec: 999_999_000 }), '-0.0000015');
  await rejectsWith(store.setattr(seq, 1, { mtime: { sec: 1, nsec: 1e9 } }), 'EINVAL', 'BAD_REQUEST');
});

test('statfs reports the filesystem holding the target', async () => {
  const dir = await tempDir();
  const store = await openStore(dir, 0);
  const s = await store.statfs();
  const ref = await statfs(dir);
  assert.equal(s.bsize, ref.bsize);
  assert.equal(s.blocks, ref.blocks);
  assert.equal(s.files, ref.files);
  assert.ok(s.bfree <= s.blocks && s.bavail <= s.bfree && s.ffree <= s.files);
  assert.deepEqual(Object.keys(s).sort(), ['bavail', 'bfree', 'blocks', 'bsize', 'ffree', 'files']);
});

test('an empty directory is formatted with a marker naming the target', async () => {
  const dir = await tempDir();
  const store = await openStore(dir, 10);
  assert.equal(store.name, 'testfs-OST000a');
  assert.equal(store.uuid, 'testfs-OST000a_UUID');
  assert.equal(store.dir, dir);
  const marker = JSON.parse(await readFile(join(dir, MARKER_FILE), 'utf8'));
  assert.deepEqual(marker, { fsname: FS, index: 10, uuid: 'testfs-OST000a_UUID', kind: 'ost', version: 1 });
  assert.ok((await stat(join(dir, 'O'))).isDirectory());
  await store.close();
  assert.ok(!(await exists(join(dir, LOCK_FILE))), 'close releases the lock');
  await rejectsWith(store.getattr(0, 1), 'ESHUTDOWN', 'TARGET_CLOSED');
});

test('a missing directory, a foreign target, a non-target directory and bad names are refused', async () => {
  const root = await tempDir();
  await rejectsWith(ObjectStore.open(join(root, 'nope'), { fsname: FS, index: 0 }), 'ENOENT', 'NO_TARGET_DIR', join(root, 'nope'));

  const ost1 = join(root, 'ost1');
  await mkdir(ost1);
  await (await ObjectStore.open(ost1, { fsname: FS, index: 1 })).close();
  await rejectsWith(ObjectStore.open(ost1, { fsname: FS, index: 2 }), 'EINVAL', 'FOREIGN_TARGET', `directory ${ost1} holds testfs-OST0001, not testfs-OST0002`);
  await rejectsWith(ObjectStore.open(ost1, { fsname: 'otherfs', index: 1 }), 'EINVAL', 'FOREIGN_TARGET', 'holds testfs-OST0001, not otherfs-OST0001');

  const full = join(root, 'full');
  await mkdir(full);
  await writeFile(join(full, 'precious.txt'), 'do not touch');
  await rejectsWith(ObjectStore.open(full, { fsname: FS, index: 0 }), 'EINVAL', 'NOT_A_TARGET', full);
  assert.deepEqual(await readdir(full), ['precious.txt'], 'nothing was written into it');

  const bad = join(root, 'bad');
  await mkdir(bad);
  await rejectsWith(ObjectStore.open(bad, { fsname: 'waytoolongname', index: 0 }), 'EINVAL', 'BAD_FSNAME');
  await rejectsWith(ObjectStore.open(bad, { fsname: FS, index: 70000 }), 'EINVAL', 'BAD_INDEX');
  await writeFile(join(bad, MARKER_FILE), '{not json');
  await rejectsWith(ObjectStore.open(bad, { fsname: FS, index: 0 }), 'EINVAL', 'BAD_TARGET_MARKER');
});

test('one target is served by one process: a live lock is EBUSY, a dead holder\'s lock is taken over', async () => {
  const dir = await tempDir();
  const store = await openStore(dir, 3);
  await rejectsWith(ObjectStore.open(dir, { fsname: FS, index: 3 }), 'EBUSY', 'TARGET_BUSY', `pid ${process.pid}`);
  await store.close();

  // a live process on this host (our parent) holds it
  await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: process.ppid, host: hostname() }));
  await rejectsWith(ObjectStore.open(dir, { fsname: FS, index: 3 }), 'EBUSY', 'TARGET_BUSY', `pid ${process.ppid}`);

  // a fresh lock of another host cannot be checked: busy until its heartbeat stops
  await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere.example' }));
  await rejectsWith(ObjectStore.open(dir, { fsname: FS, index: 3 }), 'EBUSY', 'TARGET_BUSY', 'elsewhere.example');
  const old = new Date(Date.now() - 120_000);
  await utimes(join(dir, LOCK_FILE), old, old);
  await (await openStore(dir, 3)).close();

  // a dead process of this host
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: dead, host: hostname() }));
  const s = await openStore(dir, 3);
  assert.equal(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
  await s.close();
});
