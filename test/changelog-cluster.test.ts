/**
 * The changelog of a real MDS (daemons as processes), through the real tools:
 * lctl --device FS-MDT0000 changelog_register/deregister, lfs changelog [--follow],
 * lfs changelog_clear, lctl get/set_param mdd.*.changelog_users / changelog_mask. lfs
 * finds the MDT through a Stria mount of its filesystem (a mount-table fixture here).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { lctl, parseParams } from './helpers/lctl.js';
import { formatNid } from '../src/lnet/nid.js';
import type { StriaClient } from '../src/client/client.js';

const run = promisify(execFile);
const FS = 'cltest';
const MDT = `${FS}-MDT0000`;
const cred = { uid: 0, gid: 0 };
let cluster: TestCluster;
let c: StriaClient;
let dir: string;
let mountinfo: string;

async function lfs(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(process.execPath, [join(STRIA_BIN, '..', 'lfs.js'), ...args], { env: { ...process.env, STRIA_MOUNTINFO: mountinfo, STRIA_MGS: '' }, timeout: 30_000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

/** lctl with the cluster's control sockets and its MGS */
const ctl = (...args: string[]) => lctl(cluster.runDir, '--mgs', formatNid(cluster.mgsNid), ...args);

const LINE = /^(\d+) (\d\d)([A-Z]+) +\d\d:\d\d:\d\d\.\d{9} \d{4}\.\d\d\.\d\d 0x[0-9a-f]+ t=\[0x[0-9a-f]+:0x[0-9a-f]+:0x[0-9a-f]+\]( j=\S+)? ef=0xf u=\d+:\d+ nid=\S+/;

function records(out: string): Array<{ index: number; type: string; line: string }> {
  return out.split('\n').filter((l) => l.length > 0).map((line) => {
    const m = LINE.exec(line);
    assert.ok(m, `not a changelog line: ${line}`);
    return { index: Number(m[1]), type: m[3]!, line };
  });
}

before(async () => {
  cluster = await TestCluster.start({ osts: 2, fsname: FS });
  c = await cluster.mount();
  dir = mkdtempSync(join(tmpdir(), 'stria-clcluster-'));
  mountinfo = join(dir, 'mountinfo');
  writeFileSync(mountinfo, `27 1 8:1 / / rw - ext4 /dev/sda1 rw\n61 27 0:51 / ${join(dir, 'mnt')} rw,nosuid,nodev - fuse.stria ${cluster.spec()} rw,user_id=0,group_id=0\n`);
});

after(async () => {
  await c?.unmount();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('register, record namespace changes, read them in Lustre format, clear, deregister', async () => {
  const reg = await ctl('--device', MDT, 'changelog_register');
  assert.equal(reg.stdout, `${MDT}: Registered changelog userid 'cl1'\n`, reg.stderr);

  const d = await c.mkdir(c.root, 'pics', { mode: 0o755, cred });
  const f = await c.create(d.fid, 'chloe.jpg', { mode: 0o644, cred });
  await c.write(f, 0, Buffer.from('hello'));
  await c.close(f);
  await c.rename(d.fid, 'chloe.jpg', c.root, 'moved.jpg');
  await c.link(f.fid, d.fid, 'again.jpg');
  await c.unlink(d.fid, 'again.jpg');
  await c.unlink(c.root, 'moved.jpg');

  const all = await lfs('changelog', MDT);
  assert.equal(all.code, 0, all.err);
  const recs = records(all.out);
  assert.deepEqual(recs.map((r) => r.index), recs.map((_, i) => i + 1), 'numbered from 1 without gaps');
  const types = recs.map((r) => r.type);
  for (const t of ['MKDIR', 'CREAT', 'RENME', 'HLINK', 'UNLNK']) assert.ok(types.includes(t), `${t} in ${types.join(',')}`);
  assert.ok(types.indexOf('MKDIR') < types.indexOf('CREAT') && types.indexOf('CREAT') < types.indexOf('RENME'), 'in operation order');
  const mkdir = recs.find((r) => r.type === 'MKDIR')!.line;
  assert.match(mkdir, / 02MKDIR .* 0x0 t=\[0x[0-9a-f]+:0x[0-9a-f]+:0x0\] ef=0xf u=0:0 nid=127\.0\.0\.1@tcp p=\[0x200000007:0x1:0x0\] pics$/);
  const renme = recs.find((r) => r.type === 'RENME')!.line;
  assert.match(renme, / 08RENME .* t=\[0x0:0x0:0x0\] .* p=\[0x200000007:0x1:0x0\] moved\.jpg s=\[0x[0-9a-f]+:0x[0-9a-f]+:0x0\] sp=\[0x[0-9a-f]+:0x[0-9a-f]+:0x0\] chloe\.jpg$/);
  const unlinks = recs.filter((r) => r.type === 'UNLNK').map((r) => r.line);
  assert.match(unlinks[0]!, / 06UNLNK .* 0x0 t=.* again\.jpg$/, 'another name remains: no flags');
  assert.match(unlinks[1]!, / 06UNLNK .* 0x1 t=.* moved\.jpg$/, 'the last name: CLF_UNLINK_LAST');

  const range = await lfs('changelog', MDT, '2', '3');
  assert.deepEqual(records(range.out).map((r) => r.index), [2, 3]);

  const users = parseParams((await ctl('get_param', `mdd.${MDT}.changelog_users`)).stdout);
  const last = recs[recs.length - 1]!.index;
  assert.match(users.get(`mdd.${MDT}.changelog_users`)!, new RegExp(`^current index: ${last}\\nID    index \\(idle seconds\\)\\ncl1   0 \\(\\d+\\)\\n$`));

  const clear = await lfs('changelog_clear', MDT, 'cl1', '3');
  assert.equal(clear.code, 0, clear.err);
  assert.equal(records((await lfs('changelog', MDT)).out)[0]!.index, 4, 'records up to 3 purged');
  const bad = await lfs('changelog_clear', MDT, 'cl9', '0');
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /changelog_clear: no changelog user: cl9/);
  const range2 = await lfs('changelog_clear', MDT, 'cl1', String(last + 100));
  assert.match(range2.err, /record out of range/);

  const dereg = await ctl('--device', MDT, 'changelog_deregister', 'cl1');
  assert.equal(dereg.stdout, `${MDT}: Deregistered changelog user 'cl1'\n`, dereg.stderr);
  assert.equal((await lfs('changelog', MDT)).out, '', 'no user: no records');
  const again = await ctl('--device', MDT, 'changelog_deregister', 'cl1');
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /cl1 not found/);
});

test('changelog_mask edits decide what is recorded', async () => {
  await ctl('--device', MDT, 'changelog_register');
  const before = parseParams((await ctl('get_param', `mdd.${MDT}.changelog_mask`)).stdout).get(`mdd.${MDT}.changelog_mask`)!;
  assert.match(before, /^MARK CREAT MKDIR HLINK SLINK MKNOD UNLNK RMDIR RENME RNMTO CLOSE LYOUT TRUNC SATTR XATTR HSM MTIME CTIME MIGRT FLRW RESYNC \n$/);
  const set = await ctl('set_param', `mdd.${MDT}.changelog_mask=-CREAT -MKDIR`);
  assert.equal(set.code, 0, set.stderr);
  const d = await c.mkdir(c.root, 'quiet', { mode: 0o755, cred });
  const f = await c.create(d.fid, 'q', { mode: 0o644, cred });
  await c.close(f);
  await c.unlink(d.fid, 'q');
  const types = records((await lfs('changelog', MDT)).out).map((r) => r.type);
  assert.ok(!types.includes('CREAT') && !types.includes('MKDIR'), types.join(','));
  assert.ok(types.includes('UNLNK'));
  assert.equal((await ctl('set_param', `mdd.${MDT}.changelog_mask=+creat`)).code, 0);
  const bad = await ctl('set_param', `mdd.${MDT}.changelog_mask=+nonsense`);
  assert.notEqual(bad.code, 0);
  const mask = parseParams((await ctl('get_param', `mdd.${MDT}.changelog_mask`)).stdout).get(`mdd.${MDT}.changelog_mask`)!;
  assert.ok(mask.includes(' CREAT ') && !mask.includes('MKDIR'), mask);
  await ctl('set_param', `mdd.${MDT}.changelog_mask=DEFAULT`);
});

test('lfs changelog --follow prints new records as they come and stops on SIGINT', async () => {
  const proc = spawn(process.execPath, [join(STRIA_BIN, '..', 'lfs.js'), 'changelog', '--follow', MDT], {
    env: { ...process.env, STRIA_MOUNTINFO: mountinfo, STRIA_MGS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  try {
    const f = await c.create(c.root, 'followed', { mode: 0o644, cred });
    await c.close(f);
    const deadline = Date.now() + 20_000;
    while (!/01CREAT .* followed$/m.test(out)) {
      assert.ok(Date.now() < deadline, `the new record never showed: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    proc.kill('SIGINT');
    assert.equal(await exited, 0);
  } finally {
    proc.kill('SIGKILL');
  }
});
