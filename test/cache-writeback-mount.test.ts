/**
 * The write-back cache through a real mount: writes are held dirty under the OST's
 * grant; a client killed with -9 loses only what was not fsynced, never what was; a
 * flush that fails (the OST's disk filled up behind the grant) is reported by fsync
 * with the OST's errno, and the mount goes on working once there is room again.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from './helpers/cluster.js';
import { TestMount, sh } from './helpers/mount.js';
import { mountSkip } from './helpers/two-mounts.js';
import { cacheStats } from './helpers/cache-stats.js';

const MiB = 1024 * 1024;

describe('write-back cache', { skip: mountSkip }, () => {
  let cluster: TestCluster;
  let a: TestMount;
  let b: TestMount;
  let base: string;
  let tmpfsOn: string | undefined;

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'stria-wb-'));
    cluster = await TestCluster.start({ osts: 1, ldlmTimeout: 5 });
    // the OST on a small tmpfs, so the test can fill its disk behind the client's grant
    const dir = cluster.ostDir(0);
    await cluster.kill9('oss0');
    execFileSync('cp', ['-a', dir, join(base, 'saved')]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', dir]);
    tmpfsOn = dir;
    execFileSync('cp', ['-a', `${join(base, 'saved')}/.`, dir]);
    await cluster.startRole('oss0');
    a = await TestMount.start(cluster);
    b = await TestMount.start(cluster);
  }, { timeout: 120_000 });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await cluster?.kill9('oss0');
    if (tmpfsOn) execFileSync('umount', ['-l', tmpfsOn]);
    await cluster?.stop();
    await rm(base, { recursive: true, force: true });
  }, { timeout: 120_000 });

  test('kill -9 of a client loses only what was not fsynced', { timeout: 120_000 }, async () => {
    let r = await sh(`dd if=/dev/urandom of=${a.path('log')} bs=1M count=2 conv=fsync status=none && sha256sum ${a.path('log')}`);
    assert.equal(r.code, 0, r.stderr);
    const synced = r.stdout.split(' ')[0]!;
    r = await sh(`dd if=/dev/urandom of=${a.path('log')} bs=64k count=8 oflag=append conv=notrunc status=none`);
    assert.equal(r.code, 0, r.stderr);
    const s = await cacheStats(cluster.runDir, a.mountpoint);
    assert.ok(s.dirtyBytes > 0, 'the unsynced write is held in the write-back cache');
    assert.ok(s.grantBytes > 0, 'under a grant');
    await a.kill9();
    // B's read waits for the servers to evict A (ldlm timeout), then sees the OSTs' bytes
    r = await sh(`head -c ${2 * MiB} ${b.path('log')} | sha256sum`, { timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split(' ')[0], synced, 'the fsynced 2 MiB are intact');
    r = await sh(`stat -c %s ${b.path('log')}`);
    const size = Number(r.stdout.trim());
    assert.ok(size >= 2 * MiB && size <= 2 * MiB + 512 * 1024, `size ${size}: the fsynced part, and at most what was written after`);
    await sh(`umount -l ${a.mountpoint}`);
    await a.mount();
  });

  test('a flush that fails is reported by fsync; the mount works again once there is room', { timeout: 120_000 }, async () => {
    // the grant was given while the disk had room; now something else fills it
    await sh(`dd if=/dev/zero of=${join(tmpfsOn!, 'filler')} bs=1M status=none; true`);
    let r = await sh(`dd if=/dev/urandom of=${a.path('late')} bs=1M count=2 conv=fsync status=none`);
    assert.notEqual(r.code, 0, 'dd reports the failed fsync');
    assert.match(r.stderr, /No space left on device/);
    await rm(join(tmpfsOn!, 'filler'));
    r = await sh(`dd if=/dev/urandom of=${a.path('late')} bs=1M count=2 conv=fsync status=none && sha256sum ${a.path('late')}`);
    assert.equal(r.code, 0, r.stderr);
    const want = r.stdout.split(' ')[0]!;
    r = await sh(`sha256sum ${b.path('late')}`);
    assert.equal(r.stdout.split(' ')[0], want, 'another client reads what was written');
  });
});
