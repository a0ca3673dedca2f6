/**
 * lfs on ordinary paths: a path is resolved with realpath and mapped through
 * the mount table to the Stria filesystem mounted there. The mount table is
 * a fixture (STRIA_MOUNTINFO) naming local directories as fuse.stria mounts
 * of a live cluster; the directories mirror the names inside the filesystem
 * so that realpath finds them.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { runLfs } from '../src/cli/lfs.js';
import { LfsSession } from '../src/cli/lfs-session.js';
import type { StriaClient } from '../src/client/client.js';

const run = promisify(execFile);
const LFS_BIN = join(STRIA_BIN, '..', 'lfs.js');
let cluster: TestCluster;
let c: StriaClient;
let base: string;
let mnt: string;
let fileset: string;
let mountinfo: string;
const cred = { uid: 0, gid: 0 };

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

/** The real lfs binary, with the fixture mount table, in `cwd`. */
async function lfsBin(cwd: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(process.execPath, [LFS_BIN, ...args], { cwd, env: { ...process.env, STRIA_MOUNTINFO: mountinfo }, timeout: 30_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  c = await cluster.mount();
  const d = await c.mkdir(c.root, 'd', { mode: 0o755, cred });
  const f = await c.create(d.fid, 'f', { mode: 0o644, cred, layout: { stripeCount: 2 } });
  await c.close(f);
  base = realpathSync(mkdtempSync(join(tmpdir(), 'lfs-mnt-')));
  mnt = join(base, 'mnt');
  fileset = join(base, 'fileset');
  mkdirSync(join(mnt, 'd'), { recursive: true });
  writeFileSync(join(mnt, 'd', 'f'), '');
  mkdirSync(fileset);
  writeFileSync(join(fileset, 'f'), '');
  mkdirSync(join(base, 'elsewhere'));
  mountinfo = join(base, 'mountinfo');
  writeFileSync(
    mountinfo,
    [
      '27 1 8:1 / / rw - ext4 /dev/sda1 rw',
      `61 27 0:51 / ${mnt} rw,nosuid,nodev - fuse.stria ${cluster.spec()} rw,user_id=0,group_id=0`,
      `62 27 0:52 / ${fileset} rw,nosuid,nodev - fuse.stria ${cluster.spec('d')} rw,user_id=0,group_id=0`,
    ].join('\n'),
  );
});

after(async () => {
  await c?.unmount();
  await cluster?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

test('getstripe on a path under the mount, shown as given', async () => {
  const r = await lfs('getstripe', join(mnt, 'd', 'f'));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^${join(mnt, 'd', 'f')}\\nlmm_stripe_count:  2\\n`));
  assert.equal((await lfs('getstripe', '-c', join(fileset, 'f'))).out, '2\n\n', 'a subdirectory mount maps into its fileset');
  const rel = await lfsBin(mnt, 'getstripe', 'd/f');
  assert.equal(rel.code, 0, rel.err);
  assert.match(rel.out, /^d\/f\nlmm_stripe_count:  2\n/, 'relative to the working directory, and printed so');
});

test('find prints paths from the directory as the user named it', async () => {
  const r = await lfsBin(base, 'find', 'mnt/d', '-type', 'f');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'mnt/d/f\n');
  assert.equal((await lfsBin(mnt, 'find', '.', '-name', 'f')).out, './d/f\n');
  assert.equal((await lfs('find', `${mnt}/`, '-maxdepth', '1')).out.split('\n').filter((l) => l).sort().join(' '), `${mnt}/ ${mnt}/d`);
});

test('setstripe creates a file under a mount path; path2fid names it', async () => {
  const r = await lfs('setstripe', '-c', '1', join(mnt, 'd', 'new'));
  assert.equal(r.code, 0, r.err);
  const made = await c.mdc.lookup((await c.mdc.lookup(c.root, 'd')).fid, 'new');
  assert.equal(made.layout!.objects.length, 1);
  const fid = await lfs('path2fid', join(mnt, 'd', 'new'));
  assert.equal(fid.out, `[0x${made.fid.seq.toString(16)}:0x${made.fid.oid.toString(16)}:0x0]\n`, 'the final name need not exist locally for path2fid');
});

test('df, osts, mdts and check servers without a path cover every Stria mount', async () => {
  const df = await lfs('df');
  assert.equal(df.code, 0, df.err);
  assert.equal(df.out.match(/^UUID {19}1K-blocks/gm)?.length, 2, 'one table per mount');
  assert.match(df.out, new RegExp(`${cluster.fsname}-OST0001_UUID .* ${mnt}\\[OST:1\\]\\n`));
  assert.match(df.out, new RegExp(`filesystem_summary: .* ${fileset}\\n\\n$`));
  const dfi = await lfs('df', '-i', join(mnt, 'd'));
  assert.match(dfi.out, new RegExp(`^UUID\\s+Inodes\\s+IUsed\\s+IFree IUse% Mounted on\\n${cluster.fsname}-MDT0000_UUID .*${mnt}\\[MDT:0\\]\\n`));
  assert.equal(dfi.out.split('filesystem_summary:').length, 2, 'a path: just its filesystem');
  assert.equal((await lfs('osts')).out, `OBDS:\n0: ${cluster.fsname}-OST0000_UUID ACTIVE\n1: ${cluster.fsname}-OST0001_UUID ACTIVE\n`.repeat(2));
  assert.equal((await lfs('mdts', mnt)).out, `MDTS:\n0: ${cluster.fsname}-MDT0000_UUID ACTIVE\n`);
  const check = await lfs('check', 'servers');
  assert.equal(check.code, 0, check.err);
  assert.equal(check.out.split('\n').filter((l) => l.endsWith(' active.')).length, 4, 'MGC, MDC and two OSCs, once for both mounts');
});

test('a path outside any Stria mount: one line, status 1; bad usage: status 4', async () => {
  const r = await lfsBin(base, 'getstripe', 'elsewhere');
  assert.equal(r.code, 1);
  assert.equal(r.err, 'lfs: elsewhere is not on a Stria filesystem\n');
  const missing = await lfsBin(base, 'getstripe', 'mnt/d/nope');
  assert.equal(missing.code, 1);
  assert.equal(missing.err, "lfs: cannot access 'mnt/d/nope': No such file or directory\n");
  const usage = await lfsBin(base, 'find', 'mnt', '-size', 'huge');
  assert.equal(usage.code, 4);
  assert.match(usage.err, /^lfs: bad size 'huge'\nusage: find /);
  const unknown = await lfsBin(base, 'frobnicate');
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /'frobnicate' is not a valid command/);
});
