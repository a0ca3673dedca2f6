/**
 * Every archive backend behaves the same for the copytool: S3 (against a real S3 server,
 * s3rver on loopback) and POSIX (in a temp directory) run one suite. Data goes in and comes
 * back byte for byte with its sha256; corruption and wrong expectations are caught; missing
 * keys, short sources and aborts fail cleanly and leave the previous copy in place.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { Errno, StriaError, type ErrnoName } from '../src/common/errno.js';
import type { ArchiveBackend, ChunkSink } from '../src/hsm/archive-backend.js';
import { PosixBackend } from '../src/hsm/backend-posix.js';
import { S3Backend } from '../src/hsm/backend-s3.js';
import { archiveKey } from '../src/hsm/archive-key.js';
import { startS3Server, type TestS3Server } from './helpers/s3-server.js';
import { pseudoRandomBuffer } from './helpers/data.js';

const MIB = 1 << 20;

function sha(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** `data` in pieces of `piece` bytes, as a copytool reads a file. */
async function* pieces(data: Buffer, piece = 1 * MIB): AsyncGenerator<Buffer> {
  for (let off = 0; off < data.length; off += piece) yield data.subarray(off, Math.min(data.length, off + piece));
}

/** Everything a get delivers, checking the chunks arrive in order without gaps. */
async function getAll(backend: ArchiveBackend, key: string, opts: { expectedChecksum?: string; chunkSize?: number } = {}): Promise<{ data: Buffer; chunks: number[]; checksum: string }> {
  const parts: Buffer[] = [];
  const chunks: number[] = [];
  let next = 0;
  const sink: ChunkSink = async (chunk, offset) => {
    assert.equal(offset, next, 'chunks arrive in order, without gaps');
    next += chunk.length;
    chunks.push(chunk.length);
    parts.push(Buffer.from(chunk));
  };
  const r = await backend.get(key, sink, opts);
  const data = Buffer.concat(parts);
  assert.equal(r.size, data.length);
  return { data, chunks, checksum: r.checksum };
}

async function rejectsWith(p: Promise<unknown>, errno: ErrnoName, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof StriaError, `a StriaError, not ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.errno, Errno[errno], e.message);
    return true;
  });
}

interface Fixture {
  backend: ArchiveBackend;
  /** replaces the stored data under key, keeping the recorded checksum */
  corrupt(key: string, data: Buffer): Promise<void>;
  stop(): Promise<void>;
}

const fixtures: Array<[string, () => Promise<Fixture>]> = [
  [
    's3',
    async () => {
      const server: TestS3Server = await startS3Server('stria-conformance');
      const backend = new S3Backend({ bucket: server.bucket, prefix: 'hsm/archive', endpoint: server.endpoint, credentials: server.credentials, partSize: 5 * MIB, queueSize: 2 });
      await backend.checkBucket();
      return {
        backend,
        corrupt: async (key, data) => {
          const k = `hsm/archive/${key}`;
          const head = await backend.s3.send(new HeadObjectCommand({ Bucket: server.bucket, Key: k }));
          await backend.s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: k, Body: data, Metadata: head.Metadata }));
        },
        stop: async () => {
          await backend.close();
          await server.stop();
        },
      };
    },
  ],
  [
    'posix',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'stria-archive-'));
      const backend = await PosixBackend.open(join(dir, 'root'), { create: true });
      return {
        backend,
        corrupt: async (key, data) => writeFile(join(dir, 'root', key), data),
        stop: async () => {
          await backend.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  ],
];

for (const [name, setup] of fixtures) {
  describe(`archive backend: ${name}`, () => {
    let fx: Fixture;
    before(async () => {
      fx = await setup();
    });
    after(async () => {
      await fx?.stop();
    });

    test('put, head, get and remove of a small file; remove is idempotent', async () => {
      const key = archiveKey({ seq: 0x200000400, oid: 0x11, ver: 0 });
      const data = pseudoRandomBuffer(300_000, 1);
      const put = await fx.backend.put(key, pieces(data, 65536), data.length);
      assert.deepEqual(put, { size: data.length, checksum: sha(data) });
      assert.deepEqual(await fx.backend.head(key), { size: data.length, checksum: sha(data) });
      const got = await getAll(fx.backend, key, { expectedChecksum: sha(data) });
      assert.ok(got.data.equals(data), 'the same bytes come back');
      assert.equal(got.checksum, sha(data));
      await fx.backend.remove(key);
      assert.equal(await fx.backend.head(key), undefined, 'gone after remove');
      await fx.backend.remove(key);
      await rejectsWith(getAll(fx.backend, key), 'ENOENT', 'NO_ARCHIVE_OBJECT');
    });

    test('an empty file is stored and restored', async () => {
      const key = archiveKey({ seq: 0x200000400, oid: 0x12, ver: 0 });
      const put = await fx.backend.put(key, pieces(Buffer.alloc(0)), 0);
      assert.equal(put.checksum, sha(Buffer.alloc(0)));
      assert.deepEqual(await fx.backend.head(key), { size: 0, checksum: sha(Buffer.alloc(0)) });
      const got = await getAll(fx.backend, key, { expectedChecksum: put.checksum });
      assert.equal(got.data.length, 0);
      assert.deepEqual(got.chunks, []);
    });

    test('a file larger than the part size (12 MiB, 5 MiB parts) keeps its checksum; get hands over chunks of the asked size', async () => {
      const key = archiveKey({ seq: 0x200000401, oid: 0x7, ver: 0 });
      const data = pseudoRandomBuffer(12 * MIB + 4321, 2);
      const put = await fx.backend.put(key, pieces(data, 4 * MIB), data.length);
      assert.equal(put.checksum, sha(data));
      assert.deepEqual(await fx.backend.head(key), { size: data.length, checksum: sha(data) });
      const got = await getAll(fx.backend, key, { chunkSize: 4 * MIB });
      assert.ok(got.data.equals(data));
      assert.deepEqual(got.chunks, [4 * MIB, 4 * MIB, 4 * MIB, 4321]);
    });

    test('a new put replaces the old copy and its checksum', async () => {
      const key = archiveKey({ seq: 0x200000401, oid: 0x8, ver: 0 });
      await fx.backend.put(key, pieces(pseudoRandomBuffer(6 * MIB, 3)), 6 * MIB);
      const v2 = pseudoRandomBuffer(1000, 4);
      await fx.backend.put(key, pieces(v2), v2.length);
      assert.deepEqual(await fx.backend.head(key), { size: v2.length, checksum: sha(v2) });
      assert.ok((await getAll(fx.backend, key, { expectedChecksum: sha(v2) })).data.equals(v2));
    });

    test('stored data that no longer matches its checksum fails the get with EIO BAD_CHECKSUM', async () => {
      for (const size of [70_000, 11 * MIB]) {
        const key = archiveKey({ seq: 0x200000402, oid: size, ver: 0 });
        const data = pseudoRandomBuffer(size, 5);
        await fx.backend.put(key, pieces(data), size);
        const bad = Buffer.from(data);
        bad[size >> 1] ^= 0x40;
        await fx.corrupt(key, bad);
        await rejectsWith(getAll(fx.backend, key), 'EIO', 'BAD_CHECKSUM');
        await rejectsWith(getAll(fx.backend, key, { expectedChecksum: sha(data) }), 'EIO', 'BAD_CHECKSUM');
      }
    });

    test('an expected checksum other than the stored one fails the get with EIO BAD_CHECKSUM', async () => {
      const key = archiveKey({ seq: 0x200000403, oid: 1, ver: 0 });
      const data = pseudoRandomBuffer(5000, 6);
      await fx.backend.put(key, pieces(data), data.length);
      const other = sha(Buffer.from('something else'));
      let delivered = 0;
      await rejectsWith(
        fx.backend.get(key, async (c) => {
          delivered += c.length;
        }, { expectedChecksum: other }),
        'EIO',
        'BAD_CHECKSUM',
      );
      assert.equal(delivered, 0, 'no data reaches the sink when the checksums disagree up front');
    });

    test('a source shorter or longer than the size fails with SIZE_MISMATCH and keeps the old copy', async () => {
      const key = archiveKey({ seq: 0x200000404, oid: 1, ver: 0 });
      const old = pseudoRandomBuffer(4096, 7);
      await fx.backend.put(key, pieces(old), old.length);
      for (const [declared, actual] of [[100_000, 99_999], [100_000, 100_001], [11 * MIB, 11 * MIB - 1], [11 * MIB, 11 * MIB + 5]] as const) {
        const data = pseudoRandomBuffer(actual, 8);
        await rejectsWith(fx.backend.put(key, pieces(data), declared), 'EIO', 'SIZE_MISMATCH');
        assert.deepEqual(await fx.backend.head(key), { size: old.length, checksum: sha(old) }, `after ${actual} bytes declared as ${declared}`);
      }
      assert.ok((await getAll(fx.backend, key)).data.equals(old));
    });

    test('an aborted put fails with ECANCELED and keeps the old copy; an aborted get stops', async () => {
      const key = archiveKey({ seq: 0x200000405, oid: 1, ver: 0 });
      const old = pseudoRandomBuffer(10_000, 9);
      await fx.backend.put(key, pieces(old), old.length);
      const size = 16 * MIB;
      const data = pseudoRandomBuffer(size, 10);
      const ac = new AbortController();
      async function* abortingSource(): AsyncGenerator<Buffer> {
        let sent = 0;
        for await (const p of pieces(data)) {
          if (sent >= 7 * MIB) ac.abort();
          sent += p.length;
          yield p;
        }
      }
      await rejectsWith(fx.backend.put(key, abortingSource(), size, { signal: ac.signal }), 'ECANCELED', 'CANCELED');
      assert.deepEqual(await fx.backend.head(key), { size: old.length, checksum: sha(old) });

      const big = archiveKey({ seq: 0x200000405, oid: 2, ver: 0 });
      await fx.backend.put(big, pieces(data), size);
      const ag = new AbortController();
      let seen = 0;
      await rejectsWith(
        fx.backend.get(big, async (chunk) => {
          seen += chunk.length;
          if (seen >= 2 * MIB) ag.abort();
        }, { signal: ag.signal, chunkSize: 1 * MIB }),
        'ECANCELED',
        'CANCELED',
      );
      assert.ok(seen < size, 'the get stopped before the end');
    });

    test('keys that could escape the archive or collide with checksum records are refused', async () => {
      for (const key of ['', '../x', 'a//b', 'a/./b', '/abs', 'x.sha256']) {
        await rejectsWith(fx.backend.put(key, pieces(Buffer.from('x')), 1), 'EINVAL', 'BAD_ARCHIVE_KEY');
      }
    });

    test('describe names the archive', () => {
      assert.match(fx.backend.describe(), name === 's3' ? /^s3:\/\/stria-conformance\/hsm\/archive at http:\/\/127\.0\.0\.1:\d+ \(path-style\)$/ : /^posix:\//);
    });
  });
}
