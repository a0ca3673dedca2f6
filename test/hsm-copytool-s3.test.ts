/**
 * `stria copytool` end to end against a real S3 server (s3rver on loopback) and a real
 * cluster (MGS, MDS with its coordinator, 3 OSS as processes): archive of a striped file
 * puts one object under its FID's key with the data's sha256 in its metadata (and in the
 * inode); release then restore brings the same bytes back; remove deletes the object; a
 * copy damaged in the bucket fails the restore (the file stays released) until repaired;
 * a cancel aborts a running archive; and a copytool killed with -9 in the middle of an
 * archive leaves nothing half-done: a new copytool completes the action.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { LineChild } from './helpers/child-process.js';
import { TcpProxy } from './helpers/tcp-proxy.js';
import { lctl } from './helpers/lctl.js';
import { startS3Server, type TestS3Server } from './helpers/s3-server.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import type { StriaClient } from '../src/client/client.js';
import { fidToString, type Fid } from '../src/common/fid.js';
import { Errno } from '../src/common/errno.js';
import { HS } from '../src/hsm/flags.js';
import { archiveKey } from '../src/hsm/archive-key.js';
import { CHECKSUM_METADATA, S3Backend } from '../src/hsm/backend-s3.js';

const ROOT = { uid: 0, gid: 0 };
const MIB = 1 << 20;
const WAIT_MS = 60_000;

let cluster: TestCluster;
let s3: TestS3Server;
let raw: S3Client;
let client: StriaClient;
let runDir: string;
const copytools: Copytool[] = [];

/** A `stria copytool` process and its JSON log lines. */
class Copytool {
  readonly child: LineChild;
  private dead = false;

  constructor(url: string, extra: string[] = []) {
    this.child = new LineChild(
      [process.execPath, STRIA_BIN, 'copytool', '--archive', '1', '--s3', url, '--part-size', '5M', '--access-key', s3.credentials.accessKeyId, '--secret-key', s3.credentials.secretAccessKey, ...extra, cluster.spec()],
      'copytool',
    );
    copytools.push(this);
    void this.child.exited.then(() => (this.dead = true));
  }

  logs(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const l of this.child.lines) {
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
    return out;
  }

  async waitLog(what: string, pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    return until(`copytool log: ${what}`, async () => {
      const hit = this.logs().find(pred);
      if (!hit && this.dead) throw new Error(`copytool exited before ${what}: ${this.child.lines.join('\n')} ${this.child.errors}`);
      return hit;
    });
  }

  async started(): Promise<this> {
    await this.waitLog('copytool started', (l) => l.msg === 'copytool started');
    return this;
  }

  /** the 'hsm action end' line of this cookie */
  ended(cookie: number): Record<string, unknown> | undefined {
    return this.logs().find((l) => l.msg === 'hsm action end' && l.cookie === cookie);
  }

  async kill(): Promise<void> {
    this.child.kill();
    await this.child.exited;
  }
}

async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < 100_000; i++) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function sha(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

before(async () => {
  runDir = await mkdtemp(join(tmpdir(), 'stria-ct-run-'));
  // the copytools publish their client to lctl here, not in the real /run/stria
  process.env.STRIA_RUN_DIR = runDir;
  s3 = await startS3Server('stria-archive');
  // the test's own view of the bucket, configured as the copytool's
  raw = new S3Backend({ bucket: s3.bucket, endpoint: s3.endpoint, credentials: s3.credentials }).s3;
  cluster = await TestCluster.start({ osts: 3 });
  client = await cluster.mount();
  // a lost agent's actions go to another one after 2 loop periods
  const r = await lctl(cluster.runDir, 'set_param', 'mdt.*.hsm.loop_period=1');
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  for (const ct of copytools) await ct.kill();
  await client?.unmount();
  await cluster?.stop();
  raw?.destroy();
  await s3?.stop();
  await rm(runDir, { recursive: true, force: true });
});

async function newFile(name: string, data: Buffer): Promise<Fid> {
  const f = await client.create(client.root, name, { mode: 0o644, cred: ROOT, layout: { stripeCount: 3, stripeSize: MIB } });
  await client.write(f, 0, data);
  await client.fsync(f);
  await client.close(f);
  return f.fid;
}

async function readAll(fid: Fid): Promise<Buffer> {
  const f = await client.open(fid, 0);
  try {
    return await client.read(f, 0, (await client.getattr(fid)).size);
  } finally {
    await client.close(f);
  }
}

async function flags(fid: Fid): Promise<number> {
  return (await client.hsm.state(fid)).flags;
}

async function waitFlags(fid: Fid, want: number): Promise<void> {
  let last = -1;
  await until(`flags 0x${want.toString(16)} on ${fidToString(fid)}`, async () => {
    last = await flags(fid);
    return last === want ? true : undefined;
  }).catch((e: Error) => {
    throw new Error(`${e.message} (last 0x${last.toString(16)})`);
  });
}

async function request(action: 'archive' | 'restore' | 'remove' | 'cancel', fid: Fid): Promise<number> {
  const r = await client.hsm.request({ action, fids: [fid] });
  assert.equal(r.cookies.length, 1);
  return r.cookies[0]!;
}

async function release(fid: Fid): Promise<void> {
  const attr = await client.getattr(fid);
  await client.hsm.release({ fid, dataVersion: await client.dataVersion(fid), size: attr.size, atime: attr.atime, mtime: attr.mtime, ctime: attr.ctime });
}

async function objectOf(fid: Fid): Promise<{ data: Buffer; checksum: string | undefined }> {
  const r = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: archiveKey(fid) }));
  return { data: Buffer.from(await r.Body!.transformToByteArray()), checksum: r.Metadata?.[CHECKSUM_METADATA] };
}

async function objectExists(fid: Fid): Promise<boolean> {
  try {
    await raw.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: archiveKey(fid) }));
    return true;
  } catch (e) {
    if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw e;
  }
}

let direct: Copytool;

test('archive, release and restore of a striped file through S3', async () => {
  direct = await new Copytool(s3.url, ['--workers', '2']).started();
  const data = pseudoRandomBuffer(12 * MIB + 12345, 0xa1);
  const fid = await newFile('cycle', data);
  const stat0 = await client.getattr(fid);

  const cookie = await request('archive', fid);
  assert.ok(cookie > 0, 'the archive is queued');
  await waitFlags(fid, HS.EXISTS | HS.ARCHIVED);
  const obj = await objectOf(fid);
  assert.ok(obj.data.equals(data), 'the bucket holds the file data under the FID key');
  assert.equal(obj.checksum, sha(data), 'with its sha256 in the metadata');
  const archived = await client.getattr(fid);
  assert.equal(archived.hsm?.archChecksum, sha(data), 'the inode records the same checksum');
  assert.equal(archived.hsm?.archSize, data.length);
  const end = direct.ended(cookie);
  assert.ok(end, 'the copytool logged the end of the action');
  assert.equal(end.action, 'ARCHIVE');
  assert.equal(end.fid, fidToString(fid));
  assert.equal(end.errval, 0);
  assert.equal(end.bytes, data.length);
  assert.equal(typeof end.mibps, 'number');

  await release(fid);
  assert.equal(await flags(fid), HS.RELEASED | HS.EXISTS | HS.ARCHIVED);
  const released = await client.getattr(fid);
  assert.equal(released.layout?.pattern, 'released');
  assert.equal(released.size, data.length, 'the size stays');

  const rcookie = await request('restore', fid);
  assert.ok(rcookie > 0);
  await waitFlags(fid, HS.EXISTS | HS.ARCHIVED);
  const back = await readAll(fid);
  assert.equal(back.length, data.length);
  assert.ok(back.equals(data), 'the same bytes come back');
  const stat1 = await client.getattr(fid);
  assert.equal(stat1.layout?.pattern, 'raid0');
  assert.equal(stat1.layout?.objects.length, 3, 'striped as before');
  assert.deepEqual([stat1.size, stat1.mtime], [stat0.size, stat0.mtime], 'size and mtime as before');
  assert.equal(direct.ended(rcookie)?.errval, 0);
});

test('remove deletes the copy from the bucket and clears the archive flags', async () => {
  const data = pseudoRandomBuffer(100_000, 0xa2);
  const fid = await newFile('removed', data);
  await request('archive', fid);
  await waitFlags(fid, HS.EXISTS | HS.ARCHIVED);
  assert.ok(await objectExists(fid));
  const cookie = await request('remove', fid);
  assert.ok(cookie > 0);
  await until('the remove to end', async () => direct.ended(cookie));
  await waitFlags(fid, 0);
  assert.equal(await objectExists(fid), false, 'the object is gone');
});

test('a copy damaged in the bucket fails the restore with EIO; the file stays released until the copy is repaired', async () => {
  const data = pseudoRandomBuffer(6 * MIB + 3, 0xa3);
  const fid = await newFile('damaged', data);
  await request('archive', fid);
  await waitFlags(fid, HS.EXISTS | HS.ARCHIVED);
  await release(fid);
  const good = await objectOf(fid);
  const bad = Buffer.from(good.data);
  bad[4096] ^= 0xff;
  await raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: archiveKey(fid), Body: bad, Metadata: { [CHECKSUM_METADATA]: good.checksum! } }));

  const cookie = await request('restore', fid);
  const end = await until('the failed restore to end', async () => direct.ended(cookie));
  assert.equal(end.errval, Errno.EIO, 'EIO for the checksum mismatch');
  assert.equal(end.code, 'BAD_CHECKSUM');
  await until('the action to leave the queue', async () => ((await client.hsm.action(fid)).action === 'NOOP' ? true : undefined));
  assert.equal(await flags(fid), HS.RELEASED | HS.EXISTS | HS.ARCHIVED, 'still released');
  assert.equal((await client.getattr(fid)).layout?.pattern, 'released');

  await raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: archiveKey(fid), Body: good.data, Metadata: { [CHECKSUM_METADATA]: good.checksum! } }));
  const again = await request('restore', fid);
  assert.notEqual(again, cookie, 'a new action');
  await waitFlags(fid, HS.EXISTS | HS.ARCHIVED);
  assert.ok((await readAll(fid)).equals(data));
});

test('a cancel aborts a running archive: the copytool ends it with ECANCELED and stays usable', async () => {
  await direct.kill();
  const proxy = await TcpProxy.start('127.0.0.1', Number(new URL(s3.endpoint).port));
  try {
    const ct = await new Copytool(`http://127.0.0.1:${proxy.port}/${s3.bucket}`).started();
    const data = pseudoRandomBuffer(11 * MIB, 0xa4);
    const fid = await newFile('canceled', data);
    proxy.blackhole = true; // S3 stops answering: the archive hangs mid-way
    const cookie = await request('archive', fid);
    await ct.waitLog('the archive to start', (l) => l.msg === 'hsm action start' && l.cookie === cookie);
    await until('the action to run', async () => ((await client.hsm.action(fid)).phase === 'RUNNING' ? true : undefined));
    assert.equal(await request('cancel', fid), cookie, 'the cancel names the running action');
    const end = await ct.waitLog('the canceled end', (l) => l.msg === 'hsm action end' && l.cookie === cookie);
    assert.equal(end.errval, Errno.ECANCELED);
    assert.equal(await flags(fid), 0, 'nothing archived');
    proxy.blackhole = false;
    proxy.cutAll();
    await request('archive', fid);
    await waitFlags(fid, HS.EXISTS | HS.ARCHIVED);
    assert.equal((await objectOf(fid)).checksum, sha(data));
    await ct.kill();
  } finally {
    await proxy.close();
  }
});

test('a copytool killed with -9 in the middle of an archive: a new copytool completes the action', async () => {
  const proxy = await TcpProxy.start('127.0.0.1', Number(new URL(s3.endpoint).port));
  try {
    const first = await new Copytool(`http://127.0.0.1:${proxy.port}/${s3.bucket}`, ['--workers', '1']).started();
    const data = pseudoRandomBuffer(24 * MIB + 5, 0xa5);
    const fid = await newFile('killed', data);
    // S3 takes the first 8 MiB of the upload, then stops answering: the archive is stuck
    // with data moved, as if the copytool were busy with a big file
    let passed = 0;
    proxy.transform = (dir, chunk) => {
      if (dir === 'c2s' && (passed += chunk.length) > 8 * MIB) proxy.blackhole = true;
      return chunk;
    };
    const cookie = await request('archive', fid);
    await first.waitLog('the archive to start', (l) => l.msg === 'hsm action start' && l.cookie === cookie);
    const running = await until('data to move', async () => {
      const a = await client.hsm.action(fid);
      return a.phase === 'RUNNING' && a.bytesMoved > 0 && proxy.blackhole ? a : undefined;
    });
    assert.equal(running.action, 'ARCHIVE');
    await first.kill();
    assert.equal(first.ended(cookie), undefined, 'killed before the end');
    assert.equal(await flags(fid), 0, 'nothing half-archived');
    assert.equal(await objectExists(fid), false);

    const second = await new Copytool(s3.url).started();
    await waitFlags(fid, HS.EXISTS | HS.ARCHIVED);
    assert.equal(second.ended(cookie)?.errval, 0, 'the same action, completed by the new copytool');
    const obj = await objectOf(fid);
    assert.ok(obj.data.equals(data));
    assert.equal(obj.checksum, sha(data));
    assert.equal((await client.getattr(fid)).hsm?.archChecksum, sha(data));
    await release(fid);
    await request('restore', fid);
    await waitFlags(fid, HS.EXISTS | HS.ARCHIVED);
    assert.ok((await readAll(fid)).equals(data));
    await second.kill();
  } finally {
    await proxy.close();
  }
});

test('SIGTERM: the copytool unregisters from the coordinator and exits 0', async () => {
  const agents = async () => {
    const r = await lctl(cluster.runDir, 'get_param', '-n', 'mdt.*.hsm.agents');
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const ct = await new Copytool(s3.url).started();
  const uuid = ct.logs().find((l) => l.msg === 'copytool started')!.uuid as string;
  assert.match(await agents(), new RegExp(`uuid=${uuid} archive_id=1 `), 'registered for archive 1');
  process.kill(ct.child.pid, 'SIGTERM');
  assert.equal(await ct.child.exited, 0);
  assert.ok(ct.logs().some((l) => l.msg === 'copytool stopped'));
  assert.doesNotMatch(await agents(), new RegExp(`uuid=${uuid}`), 'no longer an agent');
});

test('after an MDS restart the copytool registers again and serves the actions queued before it', async () => {
  const ct = await new Copytool(s3.url).started();
  const data = pseudoRandomBuffer(2 * MIB + 1, 0xa6);
  const fid = await newFile('across-restart', data);
  // queued, not dispatched, when the MDS dies
  assert.equal((await lctl(cluster.runDir, 'set_param', 'mdt.*.hsm_control=disabled')).code, 0);
  const cookie = await request('archive', fid);
  assert.equal((await client.hsm.action(fid)).phase, 'WAITING');
  await cluster.kill9('mds');
  await cluster.startRole('mds');
  await cluster.waitOstsReady();
  await ct.waitLog('registration on the new MDT export', (l) => l.msg === 'copytool registered again after reconnect');
  assert.equal((await lctl(cluster.runDir, 'set_param', 'mdt.*.hsm_control=enabled')).code, 0);
  await waitFlags(fid, HS.EXISTS | HS.ARCHIVED);
  assert.equal(ct.ended(cookie)?.errval, 0, 'the action queued before the restart');
  assert.equal((await objectOf(fid)).checksum, sha(data));
  await ct.kill();
});

test('SIGTERM during an archive hands the action back to the coordinator, which gives it to the next copytool', async () => {
  const proxy = await TcpProxy.start('127.0.0.1', Number(new URL(s3.endpoint).port));
  try {
    const ct = await new Copytool(`http://127.0.0.1:${proxy.port}/${s3.bucket}`).started();
    const data = pseudoRandomBuffer(7 * MIB, 0xa7);
    const fid = await newFile('stopped', data);
    proxy.blackhole = true;
    const cookie = await request('archive', fid);
    await ct.waitLog('the archive to start', (l) => l.msg === 'hsm action start' && l.cookie === cookie);
    process.kill(ct.child.pid, 'SIGTERM');
    assert.equal(await ct.child.exited, 0, 'a clean exit although S3 never answered');
    const end = ct.ended(cookie);
    assert.equal(end?.errval, Errno.ECANCELED);
    assert.equal(end?.retry, true, 'handed back for a retry');
    assert.equal(await flags(fid), 0);
    const next = await new Copytool(s3.url).started();
    await waitFlags(fid, HS.EXISTS | HS.ARCHIVED);
    assert.equal(next.ended(cookie)?.errval, 0);
    assert.equal((await objectOf(fid)).checksum, sha(data));
    await next.kill();
  } finally {
    await proxy.close();
  }
});
