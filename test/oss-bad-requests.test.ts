/**
 * Hostile requests to the OST handlers: every malformed body, out-of-range
 * number, missing or oversized bulk, unknown object and foreign sequence gets
 * the right error, and nothing stored on disk changes.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, StriaError } from '../src/common/errno.js';
import { idifSeq } from '../src/common/fid.js';
import { silentLogger } from '../src/common/log.js';
import { Opc, opcodeName } from '../src/ptlrpc/opcodes.js';
import type { RequestContext } from '../src/ptlrpc/types.js';
import { ObjectStore } from '../src/oss/objstore.js';
import { createOstTarget, type OstTarget } from '../src/oss/ost-target.js';
import { LOCK_FILE } from '../src/oss/target-dir.js';

const INDEX = 1;
const SEQ = idifSeq(INDEX);
const MiB = 1024 * 1024;
let root: string;
let store: ObjectStore;
let target: OstTarget;
/** the target as it was before any bad request */
let initial: Map<string, string>;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'stria-ost-bad-'));
  store = await ObjectStore.open(root, { fsname: 'testfs', index: INDEX });
  target = createOstTarget(store, silentLogger());
  await store.precreate(SEQ, 8);
  await store.write(SEQ, 1, 0, Buffer.from('precious contents of object one'));
  await store.write(SEQ, 2, 5 * MiB, Buffer.from('tail'));
  await store.destroy(SEQ, 8);
  await store.sync();
  initial = await snapshot(root);
});

after(async () => {
  await store?.close();
  await rm(root, { recursive: true, force: true });
});

/** Every file and directory under the target with size, mtime and content hash (atime and the lock heartbeat excluded). */
async function snapshot(dir: string, rel = ''): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    if (p === LOCK_FILE) continue;
    const st = await lstat(join(dir, p), { bigint: true });
    if (st.isDirectory()) {
      out.set(p, `dir mtime=${st.mtimeNs}`);
      for (const [k, v] of await snapshot(dir, p)) out.set(k, v);
    } else {
      const hash = createHash('sha256').update(await readFile(join(dir, p))).digest('hex');
      out.set(p, `file size=${st.size} mtime=${st.mtimeNs} ctime=${st.ctimeNs} sha256=${hash}`);
    }
  }
  return out;
}

function context(opc: number, body: unknown, bulk?: unknown): RequestContext {
  return { opc, xid: 1, flags: 0, body, bulk: bulk as Buffer | undefined, uid: 500, gid: 500, jobid: '', export: undefined };
}

async function expectError(opc: number, body: unknown, bulk: unknown, errno: keyof typeof Errno, code: string, field?: string): Promise<void> {
  const handler = target.handlers.get(opc)!;
  const what = `${opcodeName(opc)} ${JSON.stringify(body)}`;
  await assert.rejects(
    async () => handler(context(opc, body, bulk)),
    (e: unknown) => {
      assert.ok(e instanceof StriaError, `${what}: expected a StriaError, got ${String(e)}`);
      assert.equal(e.code, code, `${what}: ${e.message}`);
      assert.equal(e.errno, Errno[errno], `${what}: ${e.message}`);
      if (field) assert.ok(e.message.includes(field), `${what}: message '${e.message}' should name '${field}'`);
      return true;
    },
    what,
  );
}

const NOT_OBJECTS: unknown[] = [undefined, null, 42, 'seq=1', [], [SEQ, 1], true];

test('bodies that are not objects, or miss fields, are BAD_REQUEST for every opcode', async () => {
  const needFields = [Opc.OST_CREATE, Opc.OST_READ, Opc.OST_WRITE, Opc.OST_GETATTR, Opc.OST_SETATTR, Opc.OST_PUNCH, Opc.OST_DESTROY];
  for (const opc of needFields) {
    for (const body of [...NOT_OBJECTS, {}]) await expectError(opc, body, Buffer.from('x'), 'EINVAL', 'BAD_REQUEST');
  }
  for (const opc of [Opc.OST_STATFS, Opc.OST_SYNC]) {
    for (const body of NOT_OBJECTS.filter((b) => b !== undefined && b !== null)) await expectError(opc, body, undefined, 'EINVAL', 'BAD_REQUEST');
  }
  await expectError(Opc.OST_READ, { seq: SEQ, oid: 1, offset: 0 }, undefined, 'EINVAL', 'BAD_REQUEST', 'length');
  await expectError(Opc.OST_PUNCH, { seq: SEQ, oid: 1 }, undefined, 'EINVAL', 'BAD_REQUEST', 'size');
  await expectError(Opc.OST_CREATE, { seq: SEQ }, undefined, 'EINVAL', 'BAD_REQUEST', 'count');
});

test('wrong types and out-of-range numbers are BAD_REQUEST naming the field', async () => {
  const read = { seq: SEQ, oid: 1, offset: 0, length: 16 };
  const cases: Array<[number, Record<string, unknown>, string]> = [
    [Opc.OST_READ, { ...read, seq: String(SEQ) }, 'seq'],
    [Opc.OST_READ, { ...read, seq: -1 }, 'seq'],
    [Opc.OST_READ, { ...read, seq: 2 ** 60 }, 'seq'],
    [Opc.OST_READ, { ...read, seq: 1.5 }, 'seq'],
    [Opc.OST_READ, { ...read, oid: 2 ** 32 }, 'oid'],
    [Opc.OST_READ, { ...read, oid: -1 }, 'oid'],
    [Opc.OST_READ, { ...read, oid: '1' }, 'oid'],
    [Opc.OST_READ, { ...read, offset: -1 }, 'offset'],
    [Opc.OST_READ, { ...read, offset: 0.5 }, 'offset'],
    [Opc.OST_READ, { ...read, offset: Number.NaN }, 'offset'],
    [Opc.OST_READ, { ...read, offset: Number.POSITIVE_INFINITY }, 'offset'],
    [Opc.OST_READ, { ...read, offset: 2 ** 53 }, 'offset'],
    [Opc.OST_READ, { ...read, offset: 2 ** 53 - 1, length: 2 }, 'length'],
    [Opc.OST_READ, { ...read, length: 64 * MiB + 1 }, 'length'],
    [Opc.OST_READ, { ...read, length: 2 ** 40 }, 'length'],
    [Opc.OST_READ, { ...read, length: -1 }, 'length'],
    [Opc.OST_READ, { ...read, length: { valueOf: 16 } }, 'length'],
    [Opc.OST_WRITE, { seq: SEQ, oid: 1, offset: -4096 }, 'offset'],
    [Opc.OST_WRITE, { seq: SEQ, oid: 1, offset: '0' }, 'offset'],
    [Opc.OST_WRITE, { seq: SEQ, oid: 1, offset: 0, sync: 'yes' }, 'sync'],
    [Opc.OST_CREATE, { seq: SEQ, count: 0 }, 'count'],
    [Opc.OST_CREATE, { seq: SEQ, count: 20001 }, 'count'],
    [Opc.OST_CREATE, { seq: SEQ, count: 1e9 }, 'count'],
    [Opc.OST_CREATE, { seq: SEQ, count: 4, deleteOrphansAbove: -1 }, 'deleteOrphansAbove'],
    [Opc.OST_CREATE, { seq: SEQ, count: 4, deleteOrphansAbove: 'all' }, 'deleteOrphansAbove'],
    [Opc.OST_SETATTR, { seq: SEQ, oid: 1, mtime: { sec: 'now', nsec: 0 } }, 'mtime'],
    [Opc.OST_SETATTR, { seq: SEQ, oid: 1, atime: { sec: 1, nsec: 1e9 } }, 'atime'],
    [Opc.OST_SETATTR, { seq: SEQ, oid: 1, atime: 1700000000 }, 'atime'],
    [Opc.OST_PUNCH, { seq: SEQ, oid: 1, size: -1 }, 'size'],
    [Opc.OST_PUNCH, { seq: SEQ, oid: 1, size: 2 ** 54 }, 'size'],
    [Opc.OST_PUNCH, { seq: SEQ, oid: 1, size: '0' }, 'size'],
    [Opc.OST_DESTROY, { seq: SEQ, oid: 1.25 }, 'oid'],
    [Opc.OST_SYNC, { oid: 1 }, 'seq'],
    [Opc.OST_SYNC, { seq: 'x' }, 'seq'],
  ];
  for (const [opc, body, field] of cases) await expectError(opc, body, Buffer.from('new data'), 'EINVAL', 'BAD_REQUEST', field);
});

test('OST_WRITE without a usable bulk is BAD_REQUEST', async () => {
  const body = { seq: SEQ, oid: 1, offset: 0 };
  await expectError(Opc.OST_WRITE, body, undefined, 'EINVAL', 'BAD_REQUEST', 'bulk');
  await expectError(Opc.OST_WRITE, body, 'a string, not a buffer', 'EINVAL', 'BAD_REQUEST', 'bulk');
  await expectError(Opc.OST_WRITE, body, [Buffer.from('parts')], 'EINVAL', 'BAD_REQUEST', 'bulk');
  await expectError(Opc.OST_WRITE, body, Buffer.alloc(64 * MiB + 1), 'EINVAL', 'BAD_REQUEST', 'bulk');
  await expectError(Opc.OST_WRITE, { seq: SEQ, oid: 1, offset: 2 ** 53 - 4 }, Buffer.alloc(8), 'EINVAL', 'BAD_REQUEST', 'offset');
});

test('unknown objects are ENOENT NO_SUCH_OBJECT, and are not created', async () => {
  for (const oid of [8, 9, 1000, 2 ** 32 - 1]) {
    await expectError(Opc.OST_READ, { seq: SEQ, oid, offset: 0, length: 10 }, undefined, 'ENOENT', 'NO_SUCH_OBJECT');
    await expectError(Opc.OST_WRITE, { seq: SEQ, oid, offset: 0 }, Buffer.from('x'), 'ENOENT', 'NO_SUCH_OBJECT');
    await expectError(Opc.OST_WRITE, { seq: SEQ, oid, offset: 0, sync: true }, Buffer.from('x'), 'ENOENT', 'NO_SUCH_OBJECT');
    await expectError(Opc.OST_GETATTR, { seq: SEQ, oid }, undefined, 'ENOENT', 'NO_SUCH_OBJECT');
    await expectError(Opc.OST_SETATTR, { seq: SEQ, oid, mtime: { sec: 1, nsec: 0 } }, undefined, 'ENOENT', 'NO_SUCH_OBJECT');
    await expectError(Opc.OST_SETATTR, { seq: SEQ, oid }, undefined, 'ENOENT', 'NO_SUCH_OBJECT');
    await expectError(Opc.OST_PUNCH, { seq: SEQ, oid, size: 4096 }, undefined, 'ENOENT', 'NO_SUCH_OBJECT');
    await expectError(Opc.OST_DESTROY, { seq: SEQ, oid }, undefined, 'ENOENT', 'NO_SUCH_OBJECT');
    await expectError(Opc.OST_SYNC, { seq: SEQ, oid }, undefined, 'ENOENT', 'NO_SUCH_OBJECT');
  }
  // a normal sequence never precreated here
  await expectError(Opc.OST_WRITE, { seq: 0x200000400, oid: 1, offset: 0 }, Buffer.from('x'), 'ENOENT', 'NO_SUCH_OBJECT');
});

test('sequences that are not this OST\'s are refused', async () => {
  const other = idifSeq(INDEX + 1);
  await expectError(Opc.OST_WRITE, { seq: other, oid: 1, offset: 0 }, Buffer.from('x'), 'EINVAL', 'WRONG_SEQUENCE');
  await expectError(Opc.OST_CREATE, { seq: other, count: 4 }, undefined, 'EINVAL', 'WRONG_SEQUENCE');
  await expectError(Opc.OST_CREATE, { seq: other, count: 4, deleteOrphansAbove: 0 }, undefined, 'EINVAL', 'WRONG_SEQUENCE');
  await expectError(Opc.OST_DESTROY, { seq: other, oid: 1 }, undefined, 'EINVAL', 'WRONG_SEQUENCE');
  await expectError(Opc.OST_CREATE, { seq: 0x200000007, count: 4 }, undefined, 'EINVAL', 'BAD_SEQUENCE');
  await expectError(Opc.OST_CREATE, { seq: SEQ + 1, count: 4 }, undefined, 'EINVAL', 'BAD_SEQUENCE');
  await expectError(Opc.OST_READ, { seq: 7, oid: 1, offset: 0, length: 1 }, undefined, 'EINVAL', 'BAD_SEQUENCE');
  await expectError(Opc.OST_SYNC, { seq: 0x200000001 }, undefined, 'EINVAL', 'BAD_SEQUENCE');
});

test('after all the bad requests, nothing on disk changed', async () => {
  // The earlier tests' requests, and a last battery aimed at stored data.
  const battery: Array<[number, unknown, unknown]> = [
    [Opc.OST_WRITE, { seq: SEQ, oid: 1, offset: -1 }, Buffer.from('clobber')],
    [Opc.OST_WRITE, { seq: SEQ, oid: '1', offset: 0 }, Buffer.from('clobber')],
    [Opc.OST_WRITE, { seq: SEQ, oid: 1, offset: 0, sync: 1 }, Buffer.from('clobber')],
    [Opc.OST_WRITE, { seq: SEQ, oid: 1, offset: 0 }, undefined],
    [Opc.OST_WRITE, { seq: SEQ, oid: 9, offset: 0 }, Buffer.from('clobber')],
    [Opc.OST_WRITE, { seq: idifSeq(INDEX + 1), oid: 1, offset: 0 }, Buffer.from('clobber')],
    [Opc.OST_PUNCH, { seq: SEQ, oid: 1, size: -1 }, undefined],
    [Opc.OST_PUNCH, { seq: SEQ, oid: 2, size: '0' }, undefined],
    [Opc.OST_PUNCH, { seq: SEQ, oid: 9, size: 0 }, undefined],
    [Opc.OST_SETATTR, { seq: SEQ, oid: 1, mtime: { sec: 1, nsec: -1 } }, undefined],
    [Opc.OST_DESTROY, { seq: SEQ, oid: -1 }, undefined],
    [Opc.OST_DESTROY, { seq: SEQ, oid: 8 }, undefined],
    [Opc.OST_DESTROY, { seq: idifSeq(INDEX + 1), oid: 1 }, undefined],
    [Opc.OST_CREATE, { seq: SEQ, count: 0, deleteOrphansAbove: 0 }, undefined],
    [Opc.OST_CREATE, { seq: SEQ, count: 20001, deleteOrphansAbove: 2 }, undefined],
    [Opc.OST_CREATE, { seq: SEQ, count: 4, deleteOrphansAbove: -2 }, undefined],
    [Opc.OST_CREATE, { seq: idifSeq(INDEX + 1), count: 4 }, undefined],
    [Opc.OST_CREATE, { seq: SEQ + 1, count: 4, deleteOrphansAbove: 0 }, undefined],
    [Opc.OST_READ, { seq: SEQ, oid: 1, offset: 0, length: 2 ** 40 }, undefined],
  ];
  let refused = 0;
  for (const [opc, body, bulk] of battery) {
    await assert.rejects(async () => target.handlers.get(opc)!(context(opc, body, bulk)), StriaError, `${opcodeName(opc)} ${JSON.stringify(body)}`);
    refused++;
  }
  assert.equal(refused, battery.length);
  const afterAll = await snapshot(root);
  assert.deepEqual(afterAll, initial);
  assert.ok([...afterAll.keys()].includes('O/0/d1/1'), 'the snapshot covers the objects');
  assert.equal((await store.read(SEQ, 1, 0, 100)).toString(), 'precious contents of object one');
  assert.equal(await store.lastId(SEQ), 8);
});
