/**
 * The open cache: read-only opens of a file share one MDT open handle per client, so
 * re-reading a file through the mount sends no MDS open or close; opens for write stay
 * one MDT handle each. The MDT still knows the file is open while any local open exists:
 * a file another client unlinks keeps its objects while an fd reads it, and they go once
 * the handle closes. A handle whose MDT lock went (unlink, HSM release) is never handed
 * out again: the next open reads the inode afresh. Counted with the MDT's md_stats and
 * the cache's own counters, never with timings.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from './helpers/cluster.js';
import { TestMount } from './helpers/mount.js';
import { mountSkip } from './helpers/two-mounts.js';
import { shOk } from './helpers/shell.js';
import { counter, lctl } from './helpers/lctl.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { Errno, StriaError } from '../src/common/errno.js';
import type { OstObject } from '../src/common/layout.js';
import type { StriaClient } from '../src/client/client.js';
import { Copytool } from '../src/hsm/copytool.js';
import { PosixBackend } from '../src/hsm/backend-posix.js';
import { HS } from '../src/hsm/flags.js';

const T = { timeout: 120_000 };
const root = { uid: 0, gid: 0 };
const O_WRONLY = 1;
const O_RDWR = 2;
const SIZE = 64 * 1024 + 123;

describe('open cache', { skip: mountSkip }, () => {
  let cluster: TestCluster;
  let mnt: TestMount;
  /** another client of the same filesystem: the one that unlinks, releases and checks objects */
  let other: StriaClient;
  let seed = 1;

  before(async () => {
    cluster = await TestCluster.start({ osts: 2 });
    mnt = await TestMount.start(cluster);
    other = await cluster.mount();
  }, T);

  after(async () => {
    await other?.unmount();
    await mnt?.stop();
    await cluster?.stop();
  }, T);

  async function mdCounts(): Promise<{ open: number; close: number }> {
    const r = await lctl(cluster.runDir, 'get_param', '-n', 'mdt.*.md_stats');
    assert.equal(r.code, 0, r.stderr);
    return { open: counter(r.stdout, 'open')?.samples ?? 0, close: counter(r.stdout, 'close')?.samples ?? 0 };
  }

  async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function objectExists(o: OstObject): Promise<boolean> {
    const osc = other.ostClients().find((c) => c.index === o.ostIdx)!;
    try {
      await osc.getattr(o.seq, o.oid);
      return true;
    } catch (e) {
      if (e instanceof StriaError && e.errno === Errno.ENOENT) return false;
      throw e;
    }
  }

  /** A file written through the mount (its write open and close done), with its data. */
  async function fileOnMount(name: string): Promise<Buffer> {
    const data = pseudoRandomBuffer(SIZE, seed++);
    await writeFile(mnt.path(name), data);
    return data;
  }

  // first: nothing is cached on the mount yet, so every close counted here is one of this test's
  test('llite.*.opencache_max_count bounds the cached handles; opencache_max_ms=0 turns the cache off', T, async () => {
    const names = ['lru0', 'lru1', 'lru2', 'lru3'];
    for (const n of names) await fileOnMount(n);
    const set = async (kv: string) => {
      const r = await lctl(cluster.runDir, 'set_param', `llite.*.${kv}`);
      assert.equal(r.code, 0, r.stderr);
    };
    const get = async (k: string) => (await lctl(cluster.runDir, 'get_param', '-n', `llite.*.${k}`)).stdout.trim();
    assert.equal(await get('opencache_max_ms'), '60000');
    assert.equal(await get('opencache_max_count'), '8192');
    try {
      await set('opencache_max_count=2');
      assert.equal(await get('opencache_max_count'), '2');
      const before = await mdCounts();
      await shOk(names.map((n) => `cat ${mnt.path(n)} >/dev/null`).join(' && '));
      const read = await mdCounts();
      assert.equal(read.open - before.open, 4);
      await waitFor('two of the four handles to close', async () => (await mdCounts()).close - before.close >= 2);
      assert.equal((await mdCounts()).close - before.close, 2, 'the two most recent stay cached');

      await set('opencache_max_ms=0');
      await waitFor('the cached handles to close', async () => (await mdCounts()).close - before.close === 4);
      const off = await mdCounts();
      await shOk(`cat ${mnt.path('lru0')} >/dev/null && cat ${mnt.path('lru0')} >/dev/null`);
      const offRead = await mdCounts();
      assert.equal(offRead.open - off.open, 2, 'every open goes to the MDT');
      assert.equal(offRead.close - off.close, 2, 'and every close');

      await set('opencache_max_ms=300');
      await shOk(`cat ${mnt.path('lru1')} >/dev/null`);
      await waitFor('the idle handle to close after opencache_max_ms', async () => (await mdCounts()).close - offRead.close === 1);
      assert.notEqual((await lctl(cluster.runDir, 'set_param', 'llite.*.opencache_max_ms=-1')).code, 0, 'a negative delay is refused');
    } finally {
      await set('opencache_max_ms=60000');
      await set('opencache_max_count=8192');
    }
  });

  test('reading one file 100 times through the mount: at most one MDT open, no close', T, async () => {
    const data = await fileOnMount('hundred');
    const ref = join(await mkdtemp(join(tmpdir(), 'stria-oc-')), 'ref');
    try {
      await writeFile(ref, data);
      const before = await mdCounts();
      await shOk(`for i in $(seq 100); do cmp -s ${mnt.path('hundred')} ${ref} || exit 1; done`);
      const first = await mdCounts();
      assert.ok(first.open - before.open <= 1, `${first.open - before.open} MDT opens for 100 reads`);
      assert.equal(first.close - before.close, 0, 'no MDT close: the handle stays cached');
      await shOk(`for i in $(seq 100); do cmp -s ${mnt.path('hundred')} ${ref} || exit 1; done`);
      const again = await mdCounts();
      assert.equal(again.open - first.open, 0, 'no MDT open once the handle is cached');
      assert.equal(again.close - first.close, 0);
    } finally {
      await rm(join(ref, '..'), { recursive: true, force: true });
    }
  });

  test('opens for write keep a MDT handle each, closed at each close', T, async () => {
    await fileOnMount('appended');
    await shOk(`cat ${mnt.path('appended')} >/dev/null`); // a cached read handle exists meanwhile
    const before = await mdCounts();
    await shOk(`for i in 1 2 3 4 5; do echo $i >> ${mnt.path('appended')}; done`);
    const after = await mdCounts();
    assert.equal(after.open - before.open, 5);
    assert.equal(after.close - before.close, 5);
    assert.equal((await shOk(`tail -c 10 ${mnt.path('appended')}`)).split('\n').join(','), '1,2,3,4,5');
  });

  test('one client shares one handle between its read-only opens; opens for write get their own', T, async () => {
    const name = 'shared';
    await fileOnMount(name);
    const x = await cluster.mount();
    try {
      const attr = await x.lookup(x.root, name); // the MDT lock that vouches for the inode
      const before = await mdCounts();
      const reads = await Promise.all([x.open(attr.fid), x.open(attr.fid), x.open(attr.fid)]);
      assert.equal(new Set(reads.map((f) => f.handle)).size, 1, 'one MDT handle');
      const writer = await x.open(attr.fid, O_RDWR);
      assert.ok(reads.every((f) => f.handle !== writer.handle));
      const opened = await mdCounts();
      assert.equal(opened.open - before.open, 2, 'one open for the readers, one for the writer');
      await x.write(writer, 0, Buffer.from('new bytes'));
      await x.close(writer);
      for (const f of reads) await x.close(f);
      const closed = await mdCounts();
      assert.equal(closed.close - opened.close, 1, 'only the writer closed on the MDT');
      await assert.rejects(x.close(reads[0]!), (e: unknown) => e instanceof StriaError && e.errno === Errno.EBADF, 'a second close');
      const f = await x.open(attr.fid);
      assert.equal((await x.read(f, 0, 9)).toString(), 'new bytes');
      await x.close(f);
      assert.equal(x.openCache.stats.hits >= 3, true, `hits ${x.openCache.stats.hits}`);
    } finally {
      await x.unmount();
    }
  });

  test('a file unlinked by another client while its cached handle is unused loses its objects', T, async () => {
    const name = 'idle-unlinked';
    await fileOnMount(name);
    await shOk(`cat ${mnt.path(name)} >/dev/null`);
    const { layout } = await other.lookup(other.root, name);
    const objects = layout!.objects;
    assert.ok(objects.length > 0);
    const before = await mdCounts();
    await other.unlink(other.root, name);
    // the unlink revoked the mount's lock: the cache closes the handle, then the MDT destroys the objects
    await waitFor('the objects to be destroyed', async () => !(await Promise.all(objects.map(objectExists))).some(Boolean));
    assert.ok((await mdCounts()).close - before.close >= 1, 'the cached handle was closed');
    await assert.rejects(shOk(`cat ${mnt.path(name)}`), /No such file/);
  });

  test('an fd served by the cached handle reads a file another client unlinked; the objects go after its close', T, async () => {
    const name = 'open-unlinked';
    const data = await fileOnMount(name);
    await shOk(`cat ${mnt.path(name)} >/dev/null`);
    const before = await mdCounts();
    const holder = spawn('bash', ['-c', 'exec 3<"$1"; echo opened; read -r _; cat <&3 | od -An -v -tx1 | tr -d " \\n"', 'holder', mnt.path(name)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    holder.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => holder.once('exit', (code) => r(code)));
    try {
      await waitFor('the holder to open the file', () => out.startsWith('opened\n'));
      assert.equal((await mdCounts()).open - before.open, 0, 'the fd shares the cached handle');
      const { layout } = await other.lookup(other.root, name);
      const objects = layout!.objects;
      await other.unlink(other.root, name);
      await assert.rejects(other.lookup(other.root, name), (e: unknown) => e instanceof StriaError && e.errno === Errno.ENOENT);
      // the MDT still counts the file open: its objects stay, even once the cache's sweep has run
      await new Promise((r) => setTimeout(r, 1_500));
      assert.deepEqual(await Promise.all(objects.map(objectExists)), objects.map(() => true), 'objects kept while the fd is open');
      holder.stdin.end('\n');
      assert.equal(await exited, 0);
      assert.equal(out.slice('opened\n'.length), data.toString('hex'), 'the fd read the whole file');
      await waitFor('the objects to be destroyed after the last close', async () => !(await Promise.all(objects.map(objectExists))).some(Boolean));
    } finally {
      holder.kill('SIGKILL');
    }
  });

  test('an HSM release revokes the cached handle: the next open sees the released layout and the read restores it', T, async () => {
    const archive = await mkdtemp(join(tmpdir(), 'stria-oc-archive-'));
    const agent = await cluster.mount();
    const ct = await Copytool.start({ client: agent, archiveIds: [1], backend: await PosixBackend.open(archive) });
    const x = await cluster.mount();
    try {
      const name = 'released';
      const data = await fileOnMount(name);
      const attr = await x.lookup(x.root, name);
      const fid = attr.fid;
      const first = await x.open(fid);
      assert.equal(first.inode.layout?.pattern, 'raid0');
      assert.ok((await x.read(first, 0, data.length)).equals(data));
      await x.close(first);
      const cached = await x.open(fid);
      assert.equal(cached.handle, first.handle, 'served by the cached handle');
      await x.close(cached);

      await other.hsm.request({ action: 'archive', fids: [fid] }, root);
      await waitFor('the archive', async () => ((await other.hsm.state(fid)).flags & HS.ARCHIVED) !== 0 && (await other.hsm.action(fid)).action === 'NOOP');
      const a = await other.getattr(fid);
      await other.hsm.release({ fid, dataVersion: await other.dataVersion(fid), size: a.size, atime: a.atime, mtime: a.mtime, ctime: a.ctime }, root);

      const misses = x.openCache.stats.misses;
      const after = await x.open(fid);
      assert.equal(x.openCache.stats.misses, misses + 1, 'the open went to the MDT');
      assert.equal(after.inode.layout?.pattern, 'released', 'not the cached raid0 inode');
      assert.ok((await x.read(after, 0, data.length)).equals(data), 'the read restored the data');
      await x.close(after);
      assert.equal((await other.hsm.state(fid)).flags & HS.RELEASED, 0);
      const again = await x.open(fid);
      assert.equal(again.inode.layout?.pattern, 'raid0', 'the restore revoked what the open saw: read afresh');
      assert.ok((await x.read(again, 0, data.length)).equals(data));
      await x.close(again);
    } finally {
      await x.unmount();
      await ct.stop();
      await rm(archive, { recursive: true, force: true });
    }
  });
});
