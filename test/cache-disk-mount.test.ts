/**
 * The local disk cache (--cache-dir) through a real mount: after the client restarts,
 * reads are served from the disk, not the OSSes; a file changed by another client is
 * never served from the old blocks; a cache disk that goes away makes reads fall back
 * to the OSSes with the right bytes.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from './helpers/cluster.js';
import { TestMount, sh } from './helpers/mount.js';
import { mountSkip } from './helpers/two-mounts.js';
import { cacheStats } from './helpers/cache-stats.js';

const FILES = 40;
const FILE_BYTES = 64 * 1024;

describe('local disk cache', { skip: mountSkip }, () => {
  let cluster: TestCluster;
  let a: TestMount;
  let b: TestMount;
  let cacheDir: string;

  before(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'stria-diskcache-'));
    cluster = await TestCluster.start({ osts: 2 });
    a = await TestMount.start(cluster, 'allow_other,default_permissions', ['--cache-dir', cacheDir, '--cache-size', '256']);
    b = await TestMount.start(cluster);
  }, { timeout: 120_000 });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await cluster?.stop();
    await rm(cacheDir, { recursive: true, force: true });
  }, { timeout: 120_000 });

  /** sha256 of every file, read with O_DIRECT through mount m */
  const digests = async (m: TestMount): Promise<string> => {
    const r = await sh(`cd ${m.path('set')} && for f in $(ls | sort); do dd if=$f iflag=direct bs=1M status=none | sha256sum; done`, { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  test('after a client restart, reads come from the disk cache', { timeout: 180_000 }, async () => {
    let r = await sh(`mkdir ${a.path('set')} && for i in $(seq 1 ${FILES}); do head -c ${FILE_BYTES} /dev/urandom > ${a.path('set')}/f$i; done; sync ${a.path('set')}/*`);
    assert.equal(r.code, 0, r.stderr);
    const want = await digests(a);
    await a.unmount();
    await a.mount();
    const s1 = await cacheStats(cluster.runDir, a.mountpoint);
    assert.equal(await digests(a), want, 'same bytes after the restart');
    const s2 = await cacheStats(cluster.runDir, a.mountpoint);
    assert.ok(s2.ssd.enabled, 'the disk cache is on');
    assert.equal(s2.oss.readBytes - s1.oss.readBytes, 0, 'nothing read from the OSSes');
    assert.ok(s2.ssd.hitBytes - s1.ssd.hitBytes >= FILES * FILE_BYTES, `the disk served every file (${s2.ssd.hitBytes - s1.ssd.hitBytes} bytes)`);
  });

  test('a file another client changed is read fresh, never from the old blocks', { timeout: 120_000 }, async () => {
    await a.unmount();
    let r = await sh(`head -c ${FILE_BYTES} /dev/urandom > ${b.path('set', 'f1')} && sync ${b.path('set', 'f1')} && sha256sum ${b.path('set', 'f1')}`);
    assert.equal(r.code, 0, r.stderr);
    const fresh = r.stdout.split(' ')[0]!;
    await a.mount();
    r = await sh(`dd if=${a.path('set', 'f1')} iflag=direct bs=1M status=none | sha256sum`);
    assert.equal(r.stdout.split(' ')[0], fresh, 'A, restarted with the old blocks on its disk, reads what B wrote');
    const before = await cacheStats(cluster.runDir, a.mountpoint);
    r = await sh(`dd if=${a.path('set', 'f2')} iflag=direct bs=1M status=none | sha256sum`);
    const after = await cacheStats(cluster.runDir, a.mountpoint);
    assert.equal(after.oss.readBytes - before.oss.readBytes, 0, 'an unchanged file still comes from the disk');
  });

  test('a cache disk that goes away: reads fall back to the OSSes', { timeout: 120_000 }, async () => {
    const want = await digests(b);
    await a.unmount();
    await a.mount();
    await rm(cacheDir, { recursive: true, force: true });
    assert.equal(await digests(a), want, 'right bytes without the cache disk');
    const s = await cacheStats(cluster.runDir, a.mountpoint);
    assert.ok(s.oss.readBytes >= FILES * FILE_BYTES, 'from the OSSes');
  });
});
