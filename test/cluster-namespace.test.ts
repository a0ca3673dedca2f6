/** Namespace operations through the client against real MGS/MDS/OSS processes. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import type { StriaClient } from '../src/client/client.js';
import { StriaError } from '../src/common/errno.js';
import { fidToString } from '../src/common/fid.js';

const root = { uid: 0, gid: 0 };
let cluster: TestCluster;
let c: StriaClient;

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  c = await cluster.mount();
});

after(async () => {
  await c?.unmount();
  await cluster?.stop();
});

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof StriaError && (e.code === code || e.code.startsWith(code)), `expected ${code}`);
}

async function names(dir: { seq: number; oid: number; ver: number }): Promise<string[]> {
  const out: string[] = [];
  for await (const e of c.listDir(dir)) out.push(e.name);
  return out.sort();
}

test('rename: atomic replace, across directories, never into its own subtree', async () => {
  const a = await c.mkdir(c.root, 'ra', { mode: 0o755, cred: root });
  const b = await c.mkdir(c.root, 'rb', { mode: 0o755, cred: root });
  const f1 = await c.create(a.fid, 'one', { mode: 0o644, cred: root });
  await c.write(f1, 0, Buffer.from('first'));
  await c.close(f1);
  const f2 = await c.create(b.fid, 'two', { mode: 0o644, cred: root });
  await c.write(f2, 0, Buffer.from('second'));
  await c.close(f2);

  await c.rename(a.fid, 'one', b.fid, 'two');
  assert.deepEqual(await names(a.fid), []);
  assert.deepEqual(await names(b.fid), ['two']);
  const moved = await c.lookup(b.fid, 'two');
  assert.equal(fidToString(moved.fid), fidToString(f1.fid), 'the target name now points at the renamed file');
  const h = await c.open(moved.fid);
  assert.equal((await c.read(h, 0, 100)).toString(), 'first');
  await c.close(h);

  const sub = await c.mkdir(a.fid, 'sub', { mode: 0o755, cred: root });
  await rejectsWith(c.rename(c.root, 'ra', sub.fid, 'x'), 'EINVAL');
  await c.rename(c.root, 'ra', b.fid, 'ra-moved');
  const back = await c.lookup(sub.fid, '..');
  assert.equal(fidToString(back.fid), fidToString(a.fid));
  const parentOfMoved = await c.lookup(a.fid, '..');
  assert.equal(fidToString(parentOfMoved.fid), fidToString(b.fid), '".." follows a directory renamed across directories');

  const full = await c.mkdir(c.root, 'full', { mode: 0o755, cred: root });
  await c.mkdir(full.fid, 'child', { mode: 0o755, cred: root });
  const empty = await c.mkdir(c.root, 'empty', { mode: 0o755, cred: root });
  await rejectsWith(c.rename(c.root, 'empty', c.root, 'full'), 'ENOTEMPTY');
  await c.rename(c.root, 'full', c.root, 'empty');
  await rejectsWith(c.lookup(c.root, 'full'), 'ENOENT');
  assert.deepEqual(await names((await c.lookup(c.root, 'empty')).fid), ['child']);
  void empty;
});

test('hard links share data; unlink removes one name; nlink counts', async () => {
  const d = await c.mkdir(c.root, 'links', { mode: 0o755, cred: root });
  const f = await c.create(d.fid, 'orig', { mode: 0o644, cred: root });
  await c.write(f, 0, Buffer.from('linked data'));
  await c.close(f);
  const l = await c.link(f.fid, d.fid, 'alias');
  assert.equal(l.nlink, 2);
  await rejectsWith(c.link(f.fid, d.fid, 'alias'), 'EEXIST');
  await rejectsWith(c.link(d.fid, c.root, 'dirlink'), 'EPERM');
  await c.unlink(d.fid, 'orig');
  const alias = await c.lookup(d.fid, 'alias');
  assert.equal(alias.nlink, 1);
  assert.equal(alias.size, 11);
  const h = await c.open(alias.fid);
  assert.equal((await c.read(h, 0, 64)).toString(), 'linked data');
  await c.close(h);
  await rejectsWith(c.rmdir(c.root, 'links'), 'ENOTEMPTY');
  await rejectsWith(c.unlink(c.root, 'links'), 'EISDIR');
  await c.unlink(d.fid, 'alias');
  await c.rmdir(c.root, 'links');
  await rejectsWith(c.lookup(c.root, 'links'), 'ENOENT');
});

test('an open-unlinked file keeps its data until the last close', async () => {
  const f = await c.create(c.root, 'ghost', { mode: 0o644, cred: root });
  await c.write(f, 0, Buffer.from('still here'));
  await c.unlink(c.root, 'ghost');
  await rejectsWith(c.lookup(c.root, 'ghost'), 'ENOENT');
  assert.equal((await c.read(f, 0, 64)).toString(), 'still here');
  const obj = f.inode.layout!.objects[0]!;
  await c.close(f);
  // The MDS destroys the objects after the last close; reading them now fails.
  const osc = c.ostClients().find((o) => o.index === obj.ostIdx)!;
  let gone = false;
  for (let i = 0; i < 100 && !gone; i++) {
    try {
      await osc.getattr(obj.seq, obj.oid);
      await new Promise((r) => setTimeout(r, 50));
    } catch (e) {
      gone = e instanceof StriaError && e.errno === 2;
    }
  }
  assert.ok(gone, 'objects destroyed after the last close');
});

test('symlinks, device nodes, fifos, setattr and xattrs', async () => {
  const s = await c.symlink(c.root, 'sl', '/some/where', root);
  assert.equal(s.type, 'lnk');
  assert.equal(await c.readlink(s.fid), '/some/where');
  const dev = await c.mknod(c.root, 'null', { type: 'chr', mode: 0o666, rdev: 0x103, cred: root });
  assert.equal(dev.rdev, 0x103);
  assert.equal(dev.type, 'chr');
  const fifo = await c.mknod(c.root, 'pipe', { type: 'fifo', mode: 0o600, cred: root });
  assert.equal(fifo.mode & 0o170000, 0o010000);

  const f = await c.create(c.root, 'attrs', { mode: 0o640, cred: { uid: 1000, gid: 1000 } });
  await c.write(f, 0, Buffer.alloc(5000, 1));
  await c.close(f);
  const t = { sec: 1_600_000_000, nsec: 123_456_789 };
  const after1 = await c.setattr(f.fid, { mode: 0o600, uid: 1234, gid: 5678, mtime: t, atime: t });
  assert.equal(after1.mode & 0o7777, 0o600);
  assert.equal(after1.uid, 1234);
  assert.equal(after1.gid, 5678);
  assert.deepEqual(after1.mtime, t, 'nanosecond mtime kept');
  const truncated = await c.setattr(f.fid, { size: 100 });
  assert.equal(truncated.size, 100);
  const grown = await c.setattr(f.fid, { size: 10 * 1024 * 1024 });
  assert.equal(grown.size, 10 * 1024 * 1024);

  await c.setxattr(f.fid, 'user.color', Buffer.from('blue'));
  await c.setxattr(f.fid, 'trusted.x', Buffer.from([0, 1, 2]));
  assert.equal((await c.getxattr(f.fid, 'user.color')).toString(), 'blue');
  const list = await c.listxattr(f.fid);
  assert.ok(list.includes('user.color') && list.includes('trusted.x') && list.includes('lustre.lov'));
  const lov = await c.getxattr(f.fid, 'lustre.lov');
  assert.equal(lov.readUInt32LE(0), 0x0bd10bd0, 'lustre.lov starts with LOV_USER_MAGIC_V1');
  await rejectsWith(c.setxattr(f.fid, 'user.color', Buffer.from('red'), { create: true }), 'EEXIST');
  await c.removexattr(f.fid, 'user.color');
  await rejectsWith(c.getxattr(f.fid, 'user.color'), 'ENODATA');
  await rejectsWith(c.setxattr(f.fid, 'bogus.ns', Buffer.from('x')), 'EOPNOTSUPP');
});

test('directory default layouts are inherited by new files and subdirectories', async () => {
  const d = await c.mkdir(c.root, 'wide', { mode: 0o755, cred: root });
  await c.setDirStripe(d.fid, { stripeCount: 2, stripeSize: 2 * 1024 * 1024 });
  const f = await c.create(d.fid, 'f', { mode: 0o644, cred: root });
  assert.equal(f.inode.layout!.stripeCount, 2);
  assert.equal(f.inode.layout!.stripeSize, 2 * 1024 * 1024);
  await c.close(f);
  const sub = await c.mkdir(d.fid, 'sub', { mode: 0o755, cred: root });
  const g = await c.create(sub.fid, 'g', { mode: 0o644, cred: root });
  assert.equal(g.inode.layout!.stripeCount, 2, 'subdirectory copied the template');
  await c.close(g);
  const plain = await c.create(c.root, 'plain', { mode: 0o644, cred: root });
  assert.equal(plain.inode.layout!.stripeCount, 1, 'filesystem default: 1 stripe');
  assert.equal(plain.inode.layout!.stripeSize, 4 * 1024 * 1024, 'filesystem default: 4 MiB');
  await c.close(plain);
});

test('statfs sums the OSTs', async () => {
  const s = await c.statfs();
  const per = await Promise.all(c.ostClients().map((o) => o.statfs()));
  assert.equal(per.length, 2);
  assert.ok(s.blocks > 0 && s.bavail <= s.bfree && s.bfree <= s.blocks);
  const expectBlocks = per.reduce((a, p) => a + Math.floor((p.blocks * p.bsize) / s.bsize), 0);
  assert.equal(s.blocks, expectBlocks);
});
