/**
 * Issue 6's headline scenario, as a user does it: a 50 MiB file striped over 3 OSTs on a
 * real FUSE mount is archived to a real S3 server (s3rver on loopback) by a real
 * `stria copytool`, released and brought back by `cat`, with lfs, stat, df and sha256sum.
 * - after hsm_archive the object is in the bucket under the file's FID with the data's
 *   sha256 in its metadata;
 * - hsm_release gives the space back (lfs df), keeps stat's size, times, owner and mode,
 *   shows one block, and hsm_state prints `(0x0000000d) released exists archived, archive_id:1`;
 * - cat returns identical bytes and the state is back to `exists archived`;
 * - the restored file can be released again without a new archive, even after a touch
 *   (which opens it for write and changes its times, but not its data);
 * - a write through the mount makes it dirty, and a dirty file is not released.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { TestMount, sh } from './helpers/mount.js';
import { LineChild } from './helpers/child-process.js';
import { startS3Server, type TestS3Server } from './helpers/s3-server.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { parseFid } from '../src/common/fid.js';
import { archiveKey } from '../src/hsm/archive-key.js';
import { CHECKSUM_METADATA, S3Backend } from '../src/hsm/backend-s3.js';

const LFS = `node ${join(STRIA_BIN, '..', 'lfs.js')}`;
const MIB = 1 << 20;
const WAIT_MS = 120_000;

let s3: TestS3Server;
let cluster: TestCluster;
let mount: TestMount;
let copytool: LineChild;

before(async () => {
  s3 = await startS3Server('stria-archive');
  cluster = await TestCluster.start({ osts: 3 });
  copytool = new LineChild(
    [process.execPath, STRIA_BIN, 'copytool', '--archive', '1', '--s3', s3.url, '--access-key', s3.credentials.accessKeyId, '--secret-key', s3.credentials.secretAccessKey, cluster.spec()],
    'copytool',
  );
  await until('copytool started', async () => (copytool.lines.some((l) => l.includes('"copytool started"')) ? true : undefined));
  mount = await TestMount.start(cluster);
});

after(async () => {
  await mount?.stop();
  copytool?.kill();
  await copytool?.exited;
  await cluster?.stop();
  await s3?.stop();
});

async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function ok(cmd: string): Promise<string> {
  const r = await sh(cmd);
  assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
  return r.stdout;
}

async function hsmState(path: string): Promise<string> {
  return (await ok(`${LFS} hsm_state ${path}`)).trim();
}

/** KiB used on the OSTs, from lfs df's OST rows */
async function ostUsedKiB(): Promise<number> {
  const out = await ok(`${LFS} df ${mount.mountpoint}`);
  return out.split('\n').filter((l) => /OST[0-9a-f]{4}_UUID/.test(l)).reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[2]), 0);
}

const STAT = "stat -c '%s %b %Y %X %U:%G %a'";

test('a striped 50 MiB file goes to S3 and comes back through the mount', async () => {
  const path = mount.path('big');
  await ok(`${LFS} setstripe -c 3 -S 1M ${path}`);
  const data = pseudoRandomBuffer(50 * MIB, 61);
  await writeFile(path, data);
  await ok(`chown 1000:1000 ${path} && chmod 640 ${path} && touch -d '2024-05-01 12:00:00' ${path} && sync`);
  const sha = createHash('sha256').update(data).digest('hex');
  const fid = parseFid((await ok(`${LFS} path2fid ${path}`)).trim());

  await ok(`${LFS} hsm_archive ${path}`);
  await until('archived', async () => ((await hsmState(path)) === `${path}: (0x00000009) exists archived, archive_id:1` ? true : undefined));

  const s3api = new S3Backend({ bucket: s3.bucket, endpoint: s3.endpoint, credentials: s3.credentials }).s3;
  try {
    const head = await s3api.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: archiveKey(fid) }));
    assert.equal(head.ContentLength, data.length, 'the object holds the whole file');
    assert.equal(head.Metadata?.[CHECKSUM_METADATA], `sha256:${sha}`, 'the object carries the checksum of the data');
  } finally {
    s3api.destroy();
  }

  const statBefore = (await ok(`${STAT} ${path}`)).trim().split(' ');
  const usedBefore = await ostUsedKiB();
  await ok(`${LFS} hsm_release ${path}`);
  assert.equal(await hsmState(path), `${path}: (0x0000000d) released exists archived, archive_id:1`);
  const statReleased = (await ok(`${STAT} ${path}`)).trim().split(' ');
  assert.deepEqual([statReleased[0], ...statReleased.slice(2)], [statBefore[0], ...statBefore.slice(2)], 'size, mtime, atime, owner and mode are kept');
  assert.equal(statReleased[1], '1', 'a released file shows one block');
  const freedKiB = usedBefore - (await ostUsedKiB());
  assert.ok(freedKiB >= 45 * 1024, `lfs df shows the space back (${freedKiB} KiB freed)`);
  assert.match(await ok(`${LFS} getstripe ${path}`), /released/);

  const back = await ok(`cat ${path} | sha256sum`);
  assert.equal(back.split(' ')[0], sha, 'cat returns the identical bytes');
  assert.equal(await hsmState(path), `${path}: (0x00000009) exists archived, archive_id:1`);
  const statRestored = (await ok(`${STAT} ${path}`)).trim().split(' ');
  assert.deepEqual([statRestored[0], statRestored[2], ...statRestored.slice(4)], [statBefore[0], statBefore[2], ...statBefore.slice(4)], 'size, mtime, owner and mode survive the restore');

  // The archive copy still matches the restored data: released again with no new archive,
  // also after only its times changed.
  await ok(`touch -a -d '2025-01-01 00:00:00' ${path}`);
  await ok(`${LFS} hsm_release ${path}`);
  assert.equal(await hsmState(path), `${path}: (0x0000000d) released exists archived, archive_id:1`);
  assert.equal((await ok(`sha256sum ${path}`)).split(' ')[0], sha);

  await ok(`printf 'new' | dd of=${path} bs=1 seek=100 conv=notrunc status=none`);
  assert.equal(await hsmState(path), `${path}: (0x0000000b) exists dirty archived, archive_id:1`);
  const r = await sh(`${LFS} hsm_release ${path}`);
  assert.notEqual(r.code, 0, 'a dirty file is not released');
  assert.equal(await hsmState(path), `${path}: (0x0000000b) exists dirty archived, archive_id:1`);
});
