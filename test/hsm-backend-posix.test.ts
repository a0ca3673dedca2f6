/**
 * The POSIX archive backend on disk: the copy of key K is ROOT/K with its checksum in
 * ROOT/K.sha256; failed or aborted puts leave no temporary files and the old copy intact;
 * a copy whose checksum record is missing (a crash between the two renames) is still
 * checked against the caller's expected checksum; a damaged record fails the restore.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno, StriaError, type ErrnoName } from '../src/common/errno.js';
import { PosixBackend } from '../src/hsm/backend-posix.js';
import { archiveKey } from '../src/hsm/archive-key.js';
import { pseudoRandomBuffer } from './helpers/data.js';

const MIB = 1 << 20;
let dir: string;
let root: string;
let b: PosixBackend;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stria-posix-archive-'));
  root = join(dir, 'archive');
  b = await PosixBackend.open(root, { create: true });
});
after(async () => {
  await b?.close();
  await rm(dir, { recursive: true, force: true });
});

function sha(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function* pieces(data: Buffer, piece = 256 * 1024): AsyncGenerator<Buffer> {
  for (let off = 0; off < data.length; off += piece) yield data.subarray(off, Math.min(data.length, off + piece));
}

async function getAll(key: string, expectedChecksum?: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  await b.get(key, async (c) => void parts.push(Buffer.from(c)), { expectedChecksum });
  return Buffer.concat(parts);
}

async function rejectsWith(p: Promise<unknown>, errno: ErrnoName, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof StriaError, `a StriaError, not ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.errno, Errno[errno], e.message);
    return true;
  });
}

async function filesUnder(d: string): Promise<string[]> {
  const entries = await readdir(d, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(d.length + 1)).sort();
}

test('the copy is ROOT/<key> and its checksum ROOT/<key>.sha256', async () => {
  const fid = { seq: 0x200000400, oid: 0x2a, ver: 0 };
  const key = archiveKey(fid);
  const data = pseudoRandomBuffer(3 * MIB + 7, 1);
  await b.put(key, pieces(data), data.length);
  assert.ok((await readFile(join(root, '042a', '[0x200000400:0x2a:0x0]'))).equals(data));
  assert.equal(await readFile(join(root, '042a', '[0x200000400:0x2a:0x0].sha256'), 'utf8'), `${sha(data)}\n`);
});

test('failed and aborted puts leave no temporary files and keep the old copy', async () => {
  const key = archiveKey({ seq: 0x200000400, oid: 0x2b, ver: 0 });
  const old = pseudoRandomBuffer(1000, 2);
  await b.put(key, pieces(old), old.length);
  const before = await filesUnder(root);
  await rejectsWith(b.put(key, pieces(pseudoRandomBuffer(999, 3)), 1000), 'EIO', 'SIZE_MISMATCH');
  const ac = new AbortController();
  async function* aborting(): AsyncGenerator<Buffer> {
    yield Buffer.alloc(4096, 1);
    ac.abort();
    yield Buffer.alloc(4096, 2);
  }
  await rejectsWith(b.put(key, aborting(), 8192, { signal: ac.signal }), 'ECANCELED', 'CANCELED');
  async function* failing(): AsyncGenerator<Buffer> {
    yield Buffer.alloc(4096, 1);
    throw new StriaError(Errno.EIO, 'read failed', 'READ_FAILED');
  }
  await rejectsWith(b.put(key, failing(), 8192), 'EIO', 'READ_FAILED');
  assert.deepEqual(await filesUnder(root), before, 'only the copies and their checksums');
  assert.ok((await getAll(key, sha(old))).equals(old));
});

test('a copy without its checksum record is verified against the expected checksum only', async () => {
  const key = archiveKey({ seq: 0x200000400, oid: 0x2c, ver: 0 });
  const data = pseudoRandomBuffer(5000, 4);
  await b.put(key, pieces(data), data.length);
  await unlink(join(root, `${key}.sha256`));
  assert.deepEqual(await b.head(key), { size: data.length, checksum: undefined });
  assert.ok((await getAll(key, sha(data))).equals(data));
  await rejectsWith(getAll(key, sha(Buffer.from('x'))), 'EIO', 'BAD_CHECKSUM');
});

test('a damaged checksum record fails the restore', async () => {
  const key = archiveKey({ seq: 0x200000400, oid: 0x2d, ver: 0 });
  const data = pseudoRandomBuffer(5000, 5);
  await b.put(key, pieces(data), data.length);
  await writeFile(join(root, `${key}.sha256`), 'garbage\n');
  await rejectsWith(getAll(key), 'EIO', 'BAD_CHECKSUM');
});

test('opening a missing root fails unless asked to create it; a file is not a root', async () => {
  await rejectsWith(PosixBackend.open(join(dir, 'missing')), 'ENOENT', 'BAD_ARCHIVE_DIR');
  await writeFile(join(dir, 'plain-file'), 'x');
  await rejectsWith(PosixBackend.open(join(dir, 'plain-file')), 'ENOTDIR', 'BAD_ARCHIVE_DIR');
  const made = await PosixBackend.open(join(dir, 'made', 'deep'), { create: true });
  assert.equal(made.describe(), `posix:${join(dir, 'made', 'deep')}`);
});
