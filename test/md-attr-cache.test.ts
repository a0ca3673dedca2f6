/**
 * The client's inode and xattr cache under MDT attribute locks (src/client/md-attr-cache.ts):
 * while a client holds the attribute lock, stat and getxattr cost no MDS request; the
 * moment another client changes the inode, the lock goes and the next answer is the new
 * one. A create or unlink brings the directory's new attributes back with a lock, and a
 * create brings the new inode's locks, so neither is looked up again. Counted with the MDT's
 * md_stats, never timed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, toStriaError } from '../src/common/errno.js';
import type { Fid } from '../src/common/fid.js';
import type { StriaClient } from '../src/client/client.js';
import { TestCluster } from './helpers/cluster.js';
import { counter, lctl, parseParams } from './helpers/lctl.js';

const root = { uid: 0, gid: 0 };

describe('inode and xattr cache under MDT attribute locks', () => {
  let cluster: TestCluster;
  let a: StriaClient;
  let b: StriaClient;

  const mdStat = async (name: string): Promise<number> => {
    const r = await lctl(cluster.runDir, 'get_param', 'mdt.*.md_stats');
    assert.equal(r.code, 0, r.stderr);
    const md = parseParams(r.stdout).get(`mdt.${cluster.fsname}-MDT0000.md_stats`) ?? '';
    return counter(md, name)?.samples ?? 0;
  };

  /** getxattr requests that reach the MDT, answered or not */
  const xattrRequests = (c: StriaClient): { count: number } => {
    const seen = { count: 0 };
    const real = c.mdc.getxattr.bind(c.mdc);
    c.mdc.getxattr = (fid: Fid, name: string) => {
      seen.count++;
      return real(fid, name);
    };
    return seen;
  };

  const errnoOf = async (p: Promise<unknown>): Promise<number | undefined> => {
    try {
      await p;
      return undefined;
    } catch (e) {
      return toStriaError(e).errno;
    }
  };

  before(async () => {
    cluster = await TestCluster.start({ osts: 1 });
    a = await cluster.mount();
    b = await cluster.mount();
  }, { timeout: 120_000 });

  after(async () => {
    await a?.unmount();
    await b?.unmount();
    await cluster?.stop();
  });

  test('a second stat under the attribute lock asks the MDT nothing; another client\'s chmod is seen at once', async () => {
    const dir = await a.mkdir(a.root, 'stat', { mode: 0o755, cred: root });
    const f = await a.create(dir.fid, 'f', { mode: 0o644, cred: root });
    await a.close(f);
    await a.getattr(f.fid);
    const before = await mdStat('getattr');
    for (let i = 0; i < 5; i++) assert.equal((await a.getattr(f.fid)).mode & 0o7777, 0o644);
    assert.equal(await mdStat('getattr'), before, 'five stats under the lock sent no MDS getattr');

    await b.setattr(f.fid, { mode: 0o600 }, root);
    assert.equal((await a.getattr(f.fid)).mode & 0o7777, 0o600, 'the chmod on the other client revoked the lock and the cache');
    const again = await mdStat('getattr');
    await a.getattr(f.fid);
    assert.equal(await mdStat('getattr'), again, 'cached again under the new lock');
  });

  test('getxattr answers from the cache, absent names too, until another client sets the xattr', async () => {
    const f = await a.create(a.root, 'x', { mode: 0o644, cred: root });
    await a.close(f);
    await a.getattr(f.fid);
    const sent = xattrRequests(a);
    for (let i = 0; i < 4; i++) assert.equal(await errnoOf(a.getxattr(f.fid, 'security.capability')), Errno.ENODATA);
    assert.equal(sent.count, 1, 'one ENODATA from the MDT, then the cache');

    await b.setxattr(f.fid, 'user.color', Buffer.from('blue'));
    // the xattrs are cached under the attribute lock, which a stat takes again (the kernel stats first)
    await a.getattr(f.fid);
    assert.equal((await a.getxattr(f.fid, 'user.color')).toString(), 'blue');
    const n = sent.count;
    assert.equal((await a.getxattr(f.fid, 'user.color')).toString(), 'blue');
    assert.equal(sent.count, n, 'a value is cached too');

    await b.setxattr(f.fid, 'user.color', Buffer.from('red'));
    assert.equal((await a.getxattr(f.fid, 'user.color')).toString(), 'red', 'the other client\'s update is seen');
    await b.removexattr(f.fid, 'user.color');
    assert.equal(await errnoOf(a.getxattr(f.fid, 'user.color')), Errno.ENODATA, 'and its removal');

    await a.setxattr(f.fid, 'security.capability', Buffer.from([1, 2, 3]));
    assert.deepEqual([...(await a.getxattr(f.fid, 'security.capability'))], [1, 2, 3], 'an own setxattr drops the cached absence');
    const cached = await a.getxattr(f.fid, 'security.capability');
    cached[0] = 9;
    assert.deepEqual([...(await a.getxattr(f.fid, 'security.capability'))], [1, 2, 3], 'callers get copies');
  });

  test('a new file\'s creator holds PW on its objects: its entry is covered and the first write asks for no lock', async () => {
    const enqueues = () => a.ostClients().reduce((n, o) => n + a.dlm.osc(o.index).stats.enqueues, 0);
    const before = enqueues();
    const { file, attr } = await a.createEntry(a.root, 'fresh', { mode: 0o644, cred: root });
    assert.equal(attr.covered, true, 'size, times and attributes all under locks');
    assert.equal(attr.size, 0);
    const n = file.inode.layout!.objects.length;
    assert.equal(enqueues() - before, n, 'one enqueue per object, at the create');
    await a.write(file, 0, Buffer.alloc(8192, 7));
    assert.equal(enqueues() - before, n, 'the write found its lock');
    await a.fsync(file);
    await a.close(file);
    // another client reads it: the creator's lock is called back, the data is there
    const g = await b.open(file.fid, 0);
    assert.deepEqual(await b.read(g, 0, 8192), Buffer.alloc(8192, 7));
    assert.equal((await b.getattr(file.fid)).size, 8192);
    await b.close(g);
  });

  test('create and unlink bring the directory\'s new attributes back: no getattr or lookup after them', async () => {
    const dir = await a.mkdir(a.root, 'busy', { mode: 0o755, cred: root });
    const before = await mdStat('getattr');
    for (let i = 0; i < 10; i++) {
      const { file, attr } = await a.createEntry(dir.fid, `f${i}`, { mode: 0o644, cred: root });
      assert.equal(attr.size, 0);
      assert.equal(attr.nameCovered, true, 'the new name came with its lock');
      await a.close(file);
      const d = await a.getattr(dir.fid);
      assert.ok(d.mtime.sec > 0);
    }
    for (let i = 0; i < 10; i++) {
      await a.unlink(dir.fid, `f${i}`);
      await a.getattr(dir.fid);
    }
    const sub = await a.mkdir(dir.fid, 'sub', { mode: 0o755, cred: root });
    assert.equal((await a.getattr(dir.fid)).nlink, 3, 'mkdir: the parent\'s link count under the new lock');
    await a.rmdir(dir.fid, 'sub');
    assert.equal((await a.getattr(dir.fid)).nlink, 2, 'rmdir: and back');
    assert.equal(await mdStat('getattr'), before, 'no MDS getattr or lookup for 10 creates, 10 unlinks, mkdir and rmdir');
    assert.ok(sub.covered, 'a new directory\'s attributes are covered by its lock');

    // the other client's create in the same directory: the lock goes, the next stat is current
    const seen = (await a.getattr(dir.fid)).mtime;
    await new Promise((r) => setTimeout(r, 20));
    const g = await b.create(dir.fid, 'from-b', { mode: 0o644, cred: root });
    await b.close(g);
    const now = await a.getattr(dir.fid);
    assert.ok(now.mtime.sec > seen.sec || (now.mtime.sec === seen.sec && now.mtime.nsec > seen.nsec), 'the directory mtime moved');
    assert.equal((await a.lookup(dir.fid, 'from-b')).fid.oid, g.fid.oid);
  });
});
