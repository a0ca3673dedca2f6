/** lfs fid2path and path2fid: one path per hard link, from the names the MDS records. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from './helpers/cluster.js';
import { runLfs } from '../src/cli/lfs.js';
import { LfsSession } from '../src/cli/lfs-session.js';
import { fidToString, type Fid } from '../src/common/fid.js';
import type { StriaClient } from '../src/client/client.js';
import { Opc } from '../src/ptlrpc/opcodes.js';
import { Errno } from '../src/common/errno.js';

let cluster: TestCluster;
let c: StriaClient;
let base: string;
let mnt: string;
let mountinfo: string;
const cred = { uid: 0, gid: 0 };
let f: Fid;
let a: Fid;
let cdir: Fid;

async function lfs(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const session = new LfsSession({ mountinfo });
  try {
    const code = await runLfs(args, { stdout: (s) => (out += s), stderr: (s) => (err += s), session });
    return { code, out, err };
  } finally {
    await session.close();
  }
}

async function ok(...args: string[]): Promise<string> {
  const r = await lfs(...args);
  assert.equal(r.code, 0, `lfs ${args.join(' ')}: ${r.err}`);
  return r.out;
}

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  c = await cluster.mount();
  a = (await c.mkdir(c.root, 'a', { mode: 0o755, cred })).fid;
  const b = await c.mkdir(a, 'b', { mode: 0o755, cred });
  cdir = (await c.mkdir(c.root, 'c', { mode: 0o755, cred })).fid;
  const h = await c.create(b.fid, 'f', { mode: 0o644, cred });
  await c.close(h);
  f = h.fid;
  await c.link(f, cdir, 'g');
  await c.link(f, c.root, 'h');
  // the mount table says the filesystem is mounted on a local directory
  base = realpathSync(mkdtempSync(join(tmpdir(), 'lfs-f2p-')));
  mnt = join(base, 'mnt');
  mkdirSync(mnt);
  mountinfo = join(base, 'mountinfo');
  writeFileSync(mountinfo, `27 1 8:1 / / rw - ext4 /dev/sda1 rw\n61 27 0:51 / ${mnt} rw,nosuid,nodev - fuse.stria ${cluster.spec()} rw,user_id=0,group_id=0\n`);
});

after(async () => {
  await c?.unmount();
  await cluster?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

test('one path per hard link, relative to the filesystem for a spec or a filesystem name', async () => {
  const fid = fidToString(f);
  assert.equal(await ok('fid2path', cluster.spec(), fid), 'a/b/f\nc/g\nh\n');
  assert.equal(await ok('fid2path', cluster.fsname, fid), 'a/b/f\nc/g\nh\n', 'a filesystem name is looked up in the mount table');
  assert.equal(await ok('fid2path', cluster.spec(), fid.slice(1, -1)), 'a/b/f\nc/g\nh\n', 'brackets are optional');
  assert.equal(await ok('fid2path', cluster.spec(), fidToString(c.root)), '/\n', 'the root is "/"');
  assert.equal(await ok('fid2path', cluster.spec(), fidToString(a)), 'a\n');
});

test('under a mountpoint the paths are absolute; -0, -f, -c and -l shape the output', async () => {
  const fid = fidToString(f);
  assert.equal(await ok('fid2path', mnt, fid), `${mnt}/a/b/f\n${mnt}/c/g\n${mnt}/h\n`);
  assert.equal(await ok('fid2path', mnt, fidToString(c.root)), `${mnt}/\n`);
  assert.equal(await ok('fid2path', '-0', cluster.spec(), fid), 'a/b/f\0c/g\0h\0');
  assert.equal(await ok('fid2path', '-f', cluster.spec(), fid), `${fid} a/b/f\n${fid} c/g\n${fid} h\n`);
  assert.equal(await ok('fid2path', '--link', '1', cluster.spec(), fid), 'c/g\n');
  assert.equal(await ok('fid2path', '-c', '-l', '2', cluster.spec(), fid), '2 h\n');
  assert.equal(await ok('fid2path', cluster.spec('a'), fid), 'b/f\n', 'a subdirectory spec shows what lies below it');
});

test('renames and unlinks show at once', async () => {
  await c.rename(c.root, 'a', c.root, 'z');
  await c.unlink(cdir, 'g');
  try {
    assert.equal(await ok('fid2path', cluster.spec(), fidToString(f)), 'z/b/f\nh\n');
  } finally {
    await c.rename(c.root, 'z', c.root, 'a');
    await c.link(f, cdir, 'g');
  }
});

test('unknown and malformed FIDs: one line each, the others still printed, status 1', async () => {
  const unknown = fidToString({ seq: 0x200000bad, oid: 1, ver: 0 });
  const r = await lfs('fid2path', cluster.spec(), 'not-a-fid', unknown, fidToString(a));
  assert.equal(r.code, 1);
  assert.equal(r.out, 'a\n');
  assert.equal(r.err, `lfs: invalid FID 'not-a-fid'\nlfs: cannot find ${cluster.spec()} ${unknown}: No such file or directory\n`);
  const nofs = await lfs('fid2path', 'nosuchfs', fidToString(f));
  assert.equal(nofs.code, 1);
  assert.equal(nofs.err, "lfs: cannot resolve mount point for 'nosuchfs': No such device\n");
  const usage = await lfs('fid2path', cluster.spec());
  assert.equal(usage.code, 4);
  assert.match(usage.err, /\nusage: fid2path /);
});

test('more names than one reply holds arrive page by page, up to the 64 the MDS keeps', async () => {
  let dir = c.root;
  const long = (ch: string) => ch.repeat(250);
  const levels = ['p', 'q', 'r', 's', 'u'];
  for (const ch of levels) dir = (await c.mkdir(dir, long(ch), { mode: 0o755, cred })).fid;
  const h = await c.create(dir, 'n0', { mode: 0o644, cred });
  await c.close(h);
  for (let i = 1; i < 70; i++) await c.link(h.fid, dir, `n${i}`);
  const paths = (await ok('fid2path', cluster.spec(), fidToString(h.fid))).split('\n').filter((p) => p);
  assert.equal(paths.length, 64, 'the newest 64 names');
  const prefix = levels.map(long).join('/') + '/';
  assert.deepEqual(paths, Array.from({ length: 64 }, (_, i) => `${prefix}n${i + 6}`));
  assert.ok(paths.join('\n').length > 64 * 1024, 'more than one message header (64 KiB) could carry');
});

test('path2fid, with --parents one [parent]/name per hard link', async () => {
  assert.equal(await ok('path2fid', cluster.spec('a', 'b', 'f')), `${fidToString(f)}\n`);
  assert.equal(
    await ok('path2fid', cluster.spec('a'), cluster.spec('c', 'g')),
    `${cluster.spec('a')}: ${fidToString(a)}\n${cluster.spec('c', 'g')}: ${fidToString(f)}\n`,
  );
  const b = await c.mdc.lookup(a, 'b');
  const parents = await ok('path2fid', '--parents', cluster.spec('c', 'g'));
  assert.ok(parents.endsWith('\n'));
  assert.deepEqual(parents.slice(0, -1).split('\t').sort(), [`${fidToString(b.fid)}/f`, `${fidToString(cdir)}/g`, `${fidToString(c.root)}/h`].sort());
  assert.equal(await ok('path2fid', '-p', join(mnt, 'a')), `${fidToString(c.root)}/a\n`, 'a path under the mount');
  const root = await lfs('path2fid', '--parents', cluster.spec());
  assert.equal(root.code, 1);
  assert.equal(root.err, `lfs: cannot get parent fid for '${cluster.spec()}': No data available\n`);
  const missing = await lfs('path2fid', cluster.spec('nope'), cluster.spec('a'));
  assert.equal(missing.code, 1);
  assert.equal(missing.out, `${cluster.spec('a')}: ${fidToString(a)}\n`, 'the other paths are still done');
});

test('MDS_GET_INFO answers names and refuses malformed requests', async () => {
  const { links, overflow } = await c.mdc.links(f);
  assert.equal(overflow, false);
  assert.deepEqual(links.map((l) => l.name).sort(), ['f', 'g', 'h']);
  for (const body of [{ key: 'nope', fid: f }, { key: 'fid2path' }, { key: 'fid2path', fid: f, link: -1 }, { key: 'links', fid: { seq: 'x' } }, null]) {
    await assert.rejects(c.mdc.imp.request(Opc.MDS_GET_INFO, body), (e: { errno?: number }) => e.errno === Errno.EINVAL, JSON.stringify(body));
  }
  await assert.rejects(c.fid2path({ seq: 0x200000bad, oid: 9, ver: 0 }), (e: { errno?: number }) => e.errno === Errno.ENOENT);
});
