/**
 * The S3 backend against a real S3 server (s3rver on loopback): how objects and checksums
 * are laid out in the bucket (single PUT with metadata, multipart + metadata self-copy,
 * companion object beyond the copy limit), that uploads stream with bounded memory, the
 * bucket check at start-up, and SDK failures as StriaErrors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { Errno, StriaError, type ErrnoName } from '../src/common/errno.js';
import { S3Backend, CHECKSUM_METADATA } from '../src/hsm/backend-s3.js';
import { archiveKey } from '../src/hsm/archive-key.js';
import { startS3Server, type TestS3Server } from './helpers/s3-server.js';
import { pseudoRandomBuffer } from './helpers/data.js';

const MIB = 1 << 20;
const warnings: string[] = [];
process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));

let server: TestS3Server;
before(async () => {
  server = await startS3Server('stria-s3-backend');
});
after(async () => {
  await server?.stop();
});

function sha(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function* pieces(data: Buffer, piece = 1 * MIB): AsyncGenerator<Buffer> {
  for (let off = 0; off < data.length; off += piece) yield data.subarray(off, Math.min(data.length, off + piece));
}

async function getAll(b: S3Backend, key: string, expectedChecksum?: string): Promise<Buffer> {
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

/** The S3 calls a backend makes, in order, and the part bytes the server acknowledged. */
function recordCalls(b: S3Backend): { calls: string[]; acked: () => number } {
  const calls: string[] = [];
  let acked = 0;
  b.s3.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName).replace(/Command$/, '');
      calls.push(name);
      const r = await next(args);
      if (name === 'UploadPart') acked += ((args.input as { Body?: Buffer }).Body?.length ?? 0);
      return r;
    },
    { step: 'initialize', name: 'recordCalls' },
  );
  return { calls, acked: () => acked };
}

function backend(extra: Partial<ConstructorParameters<typeof S3Backend>[0]> = {}): S3Backend {
  return new S3Backend({ bucket: server.bucket, endpoint: server.endpoint, credentials: server.credentials, partSize: 5 * MIB, ...extra });
}

test('a file up to the part size is one PutObject with its checksum in the metadata stria-sha256', async () => {
  const b = backend();
  try {
    const rec = recordCalls(b);
    const key = archiveKey({ seq: 0x200000400, oid: 0x100, ver: 0 });
    const data = pseudoRandomBuffer(5 * MIB, 1);
    await b.put(key, pieces(data), data.length);
    assert.deepEqual(rec.calls, ['PutObject']);
    const head = await b.s3.send(new HeadObjectCommand({ Bucket: server.bucket, Key: key }));
    assert.equal(head.Metadata?.[CHECKSUM_METADATA], sha(data));
    assert.equal(head.ContentLength, data.length);
  } finally {
    await b.close();
  }
});

test('a 12 MiB file goes up in 5 MiB parts; the checksum lands in the metadata by a self-copy', async () => {
  const b = backend();
  try {
    const rec = recordCalls(b);
    const key = archiveKey({ seq: 0x200000400, oid: 0x101, ver: 0 });
    const data = pseudoRandomBuffer(12 * MIB, 2);
    const put = await b.put(key, pieces(data), data.length);
    assert.equal(put.checksum, sha(data));
    assert.equal(rec.calls.filter((c) => c === 'UploadPart').length, 3, rec.calls.join(' '));
    assert.ok(rec.calls.includes('CreateMultipartUpload') && rec.calls.includes('CompleteMultipartUpload'), rec.calls.join(' '));
    assert.equal(rec.calls.at(-1), 'CopyObject', 'the metadata is set after the upload');
    const head = await b.s3.send(new HeadObjectCommand({ Bucket: server.bucket, Key: key }));
    assert.equal(head.Metadata?.[CHECKSUM_METADATA], sha(data));
    assert.equal(head.ContentLength, data.length);
    const raw = await b.s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: key }));
    assert.ok(Buffer.from(await raw.Body!.transformToByteArray()).equals(data), 'the self-copy kept the data');
  } finally {
    await b.close();
  }
});

test('beyond the metadata copy limit the checksum goes in a companion object, which head and get read', async () => {
  const b = backend({ metadataCopyLimit: 10 * MIB });
  try {
    const key = archiveKey({ seq: 0x200000400, oid: 0x102, ver: 0 });
    const data = pseudoRandomBuffer(12 * MIB, 3);
    await b.put(key, pieces(data), data.length);
    const head = await b.s3.send(new HeadObjectCommand({ Bucket: server.bucket, Key: key }));
    assert.equal(head.Metadata?.[CHECKSUM_METADATA], undefined, 'no metadata copy');
    const companion = await b.s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: `${key}.sha256` }));
    assert.equal((await companion.Body!.transformToString()).trim(), sha(data));
    assert.deepEqual(await b.head(key), { size: data.length, checksum: sha(data) });
    assert.ok((await getAll(b, key, sha(data))).equals(data));
    // the companion vouches for the data: a wrong one fails the restore
    await b.s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: `${key}.sha256`, Body: sha(Buffer.from('other')) }));
    await rejectsWith(getAll(b, key), 'EIO', 'BAD_CHECKSUM');
    // a later, smaller version of the file carries metadata, which wins over any companion
    const small = pseudoRandomBuffer(1000, 4);
    await b.put(key, pieces(small), small.length);
    assert.deepEqual(await b.head(key), { size: small.length, checksum: sha(small) });
    await b.remove(key);
    const left = await b.s3.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: key }));
    assert.deepEqual(left.Contents ?? [], [], 'remove deletes the object and its companion');
  } finally {
    await b.close();
  }
});

test('an upload never reads far ahead of what the server has stored (bounded memory)', async () => {
  const b = backend({ queueSize: 2 });
  try {
    const rec = recordCalls(b);
    const size = 40 * MIB;
    const chunk = pseudoRandomBuffer(1 * MIB, 5);
    let produced = 0;
    let worstLead = 0;
    async function* source(): AsyncGenerator<Buffer> {
      while (produced < size) {
        worstLead = Math.max(worstLead, produced - rec.acked());
        produced += chunk.length;
        yield chunk;
      }
    }
    await b.put(archiveKey({ seq: 0x200000400, oid: 0x103, ver: 0 }), source(), size);
    // parts in flight (queueSize) + the one being cut + the piece in hand
    const bound = (2 + 2) * 5 * MIB + chunk.length;
    assert.ok(worstLead <= bound, `read ${worstLead} bytes ahead of the server, more than ${bound}`);
    assert.equal(rec.acked(), size);
  } finally {
    await b.close();
  }
});

test('a key prefix from the URL puts every object under it', async () => {
  const b = backend({ prefix: 'site-a/hsm' });
  try {
    const key = archiveKey({ seq: 0x200000400, oid: 0x104, ver: 0 });
    await b.put(key, pieces(Buffer.from('hello')), 5);
    const head = await b.s3.send(new HeadObjectCommand({ Bucket: server.bucket, Key: `site-a/hsm/${key}` }));
    assert.equal(head.ContentLength, 5);
    assert.equal(await b.head(archiveKey({ seq: 0x200000400, oid: 0x105, ver: 0 })), undefined);
  } finally {
    await b.close();
  }
});

test('start-up check: a missing bucket is ENOENT NO_BUCKET unless asked to create it', async () => {
  const b = new S3Backend({ bucket: 'not-there-yet', endpoint: server.endpoint, credentials: server.credentials });
  try {
    await rejectsWith(b.checkBucket(false), 'ENOENT', 'NO_BUCKET');
    await b.checkBucket(true);
    await b.checkBucket(false);
    await b.checkBucket(true);
    await b.put('x/y', pieces(Buffer.from('data')), 4);
    assert.deepEqual(await b.head('x/y'), { size: 4, checksum: sha(Buffer.from('data')) });
  } finally {
    await b.close();
  }
});

test('wrong credentials are EACCES S3_ACCESS_DENIED; an endpoint nobody listens on is EIO S3_UNREACHABLE', async () => {
  const denied = new S3Backend({ bucket: server.bucket, endpoint: server.endpoint, credentials: { accessKeyId: 'NOBODY', secretAccessKey: 'WRONG' } });
  try {
    await rejectsWith(denied.checkBucket(), 'EACCES', 'S3_ACCESS_DENIED');
    await rejectsWith(denied.put('a/b', pieces(Buffer.from('x')), 1), 'EACCES', 'S3_ACCESS_DENIED');
  } finally {
    await denied.close();
  }
  const port = await closedPort();
  const nowhere = new S3Backend({ bucket: 'nothing', endpoint: `http://127.0.0.1:${port}`, credentials: server.credentials });
  try {
    await rejectsWith(nowhere.checkBucket(), 'EIO', 'S3_UNREACHABLE');
  } finally {
    await nowhere.close();
  }
});

test('part sizes below 5 MiB and bad queue sizes are refused', () => {
  for (const partSize of [0, 1 << 20, 5 * MIB - 1, 1.5]) {
    assert.throws(() => backend({ partSize }), (e: unknown) => e instanceof StriaError && e.code === 'BAD_PART_SIZE');
  }
  for (const queueSize of [0, -1, 65, 1.5]) {
    assert.throws(() => backend({ queueSize }), (e: unknown) => e instanceof StriaError && e.code === 'BAD_QUEUE_SIZE');
  }
});

test("the SDK's Node version warning stays out of the process's output", () => {
  assert.deepEqual(warnings.filter((w) => w.includes('NodeVersionSupportWarning')), []);
});

/** A loopback port that was just free: nothing listens there. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}
