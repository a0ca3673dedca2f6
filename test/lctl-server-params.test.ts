/**
 * Server-side parameters read from the daemons: mdt.*.md_stats counts each
 * metadata operation under Lustre's name; obdfilter, lod and mgs parameters show
 * the real configuration and space.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statfs } from 'node:fs/promises';
import { TestCluster } from './helpers/cluster.js';
import { counter, lctl, parseParams } from './helpers/lctl.js';
import type { StriaClient } from '../src/client/client.js';

const root = { uid: 0, gid: 0 };
let cluster: TestCluster;
let client: StriaClient;

before(async () => {
  cluster = await TestCluster.start({ osts: 2, stripeSize: '1M', stripeCount: 2 });
  client = await cluster.mount();
});

after(async () => {
  await client?.unmount();
  await cluster?.stop();
});

test('md_stats counts each metadata operation once, under Lustre\'s names', async () => {
  const clear = await lctl(cluster.runDir, 'set_param', 'mdt.*.md_stats=clear');
  assert.equal(clear.code, 0, clear.stderr);
  assert.equal(clear.stdout, `mdt.${cluster.fsname}-MDT0000.md_stats=clear\n`);

  const d1 = await client.mkdir(client.root, 'd1', { mode: 0o755, cred: root });
  const d2 = await client.mkdir(client.root, 'd2', { mode: 0o755, cred: root });
  const f = await client.create(d1.fid, 'f', { mode: 0o644, cred: root });
  await client.close(f);
  await client.mknod(d1.fid, 'pipe', { type: 'fifo', mode: 0o644, cred: root });
  await client.link(f.fid, d2.fid, 'hard');
  await client.rename(d1.fid, 'f', d1.fid, 'g');
  await client.rename(d1.fid, 'g', d2.fid, 'g');
  await client.unlink(d2.fid, 'hard');
  await client.unlink(d1.fid, 'pipe');
  await client.rmdir(client.root, 'd1');
  for (let i = 0; i < 3; i++) await client.mdc.getattr(client.root);
  await client.mdc.setattr(f.fid, { mode: 0o600 });
  await client.setxattr(f.fid, 'user.k', Buffer.from('v'));
  await client.getxattr(f.fid, 'user.k');
  await client.mdc.statfs();

  const r = await lctl(cluster.runDir, 'get_param', 'mdt.*.md_stats');
  assert.equal(r.code, 0, r.stderr);
  const md = parseParams(r.stdout).get(`mdt.${cluster.fsname}-MDT0000.md_stats`)!;
  const expected: Record<string, number> = {
    open: 1, close: 1, mknod: 1, link: 1, unlink: 2, mkdir: 2, rmdir: 1, rename: 2, getattr: 3,
    setattr: 1, getxattr: 1, setxattr: 1, statfs: 1, samedir_rename: 1, crossdir_rename: 1,
  };
  for (const [name, n] of Object.entries(expected)) {
    const c = counter(md, name);
    assert.equal(c?.samples, n, `${name} in:\n${md}`);
    assert.equal(c?.unit, 'usecs');
    assert.ok(c.min! <= c.max! && c.sum! >= c.max!);
  }
  assert.equal(counter(md, 'sync'), undefined, 'no sync was done');
  const order = md.split('\n').slice(3).filter(Boolean).map((l) => l.split(' ')[0]);
  assert.deepEqual(order, ['open', 'close', 'mknod', 'link', 'unlink', 'mkdir', 'rmdir', 'rename', 'getattr', 'setattr', 'getxattr', 'setxattr', 'statfs', 'samedir_rename', 'crossdir_rename']);
});

test('obdfilter, lod and mgs parameters show the real configuration and space', async () => {
  const fs = cluster.fsname;
  const r = await lctl(cluster.runDir, 'get_param', 'obdfilter.*.kbytestotal', 'obdfilter.*.blocksize', 'obdfilter.*.uuid', 'lod.*.stripe*', 'lod.*.numobd', 'mgs.MGS.filesystems', 'mgs.MGS.live.*', 'mdt.*.uuid');
  assert.equal(r.code, 0, r.stderr);
  const p = parseParams(r.stdout);
  const disk = await statfs(cluster.ostDir(0));
  assert.equal(p.get(`obdfilter.${fs}-OST0000.kbytestotal`), `${Math.floor((disk.blocks * disk.bsize) / 1024)}\n`);
  assert.equal(p.get(`obdfilter.${fs}-OST0000.blocksize`), `${disk.bsize}\n`);
  assert.equal(p.get(`obdfilter.${fs}-OST0001.uuid`), `${fs}-OST0001_UUID\n`);
  assert.equal(p.get(`lod.${fs}-MDT0000-mdtlov.stripesize`), `${1 << 20}\n`);
  assert.equal(p.get(`lod.${fs}-MDT0000-mdtlov.stripecount`), '2\n');
  assert.equal(p.get(`lod.${fs}-MDT0000-mdtlov.numobd`), '2\n');
  assert.equal(p.get('mgs.MGS.filesystems'), `${fs}\n`);
  assert.match(p.get(`mgs.MGS.live.${fs}`)!, new RegExp(`^fsname: ${fs}\\ngen: \\d+\\n${fs}-MDT0000\\n${fs}-OST0000\\n${fs}-OST0001\\n$`));
  assert.equal(p.get(`mdt.${fs}-MDT0000.uuid`), `${fs}-MDT0000_UUID\n`);

  const ro = await lctl(cluster.runDir, 'set_param', 'obdfilter.*.kbytestotal=1');
  assert.equal(ro.code, 13, 'statfs values are read-only');
});
