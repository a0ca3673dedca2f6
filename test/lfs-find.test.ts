/** lfs find walks the namespace through the MDS and applies find(1)-style tests, negations and depth limits. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { runLfs } from '../src/cli/lfs.js';
import type { Fid } from '../src/common/fid.js';
import type { Inode } from '../src/common/inode.js';
import type { StriaClient } from '../src/client/client.js';
import { parseFindSize, parseFindTime, valueCmp, globToRegExp } from '../src/cli/lfs-find.js';

let cluster: TestCluster;
let c: StriaClient;
const cred = { uid: 0, gid: 0 };
const files: Record<string, Inode> = {};

async function lfs(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runLfs(args, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

/** The paths find prints, sorted (readdir order is the hash order). */
async function found(...args: string[]): Promise<string[]> {
  const r = await lfs('find', cluster.spec('t'), ...args);
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out === '' || r.out.endsWith('\n'));
  return r.out.split('\n').filter((l) => l.length > 0).sort();
}

async function makeFile(dir: Fid, name: string, bytes: number, stripeCount?: number): Promise<Inode> {
  const f = await c.create(dir, name, { mode: 0o644, cred, layout: stripeCount ? { stripeCount } : undefined });
  if (bytes > 0) await c.write(f, 0, Buffer.alloc(bytes, 7));
  await c.close(f);
  return c.mdc.getattr(f.fid);
}

const ALL = ['/t', '/t/a.c', '/t/big.txt', '/t/fifo', '/t/link', '/t/pooldir', '/t/sub', '/t/sub/c.c', '/t/sub/deep', '/t/sub/deep/d.c'];

before(async () => {
  cluster = await TestCluster.start({ osts: 3 });
  c = await cluster.mount();
  const t = await c.mkdir(c.root, 't', { mode: 0o755, cred });
  files['a.c'] = await makeFile(t.fid, 'a.c', 0, 1);
  files['big.txt'] = await makeFile(t.fid, 'big.txt', 3 * 1024 * 1024, 3);
  await c.symlink(t.fid, 'link', 'a.c', cred);
  await c.mknod(t.fid, 'fifo', { type: 'fifo', mode: 0o644, cred });
  const pooldir = await c.mkdir(t.fid, 'pooldir', { mode: 0o755, cred });
  await c.setDirStripe(pooldir.fid, { pool: 'flash' });
  const sub = await c.mkdir(t.fid, 'sub', { mode: 0o755, cred });
  await c.setDirStripe(sub.fid, { stripeCount: 2, stripeSize: 1 << 20 });
  files['c.c'] = await makeFile(sub.fid, 'c.c', 1500);
  const old = { sec: Math.floor(Date.now() / 1000) - 3 * 86400, nsec: 0 };
  await c.setattr(files['c.c'].fid, { mtime: old, atime: old });
  const deep = await c.mkdir(sub.fid, 'deep', { mode: 0o755, cred });
  files['d.c'] = await makeFile(deep.fid, 'd.c', 0);
});

after(async () => {
  await c?.unmount();
  await cluster?.stop();
});

test('with no tests every name is printed, the starting directory first', async () => {
  const r = await lfs('find', cluster.spec('t'));
  assert.equal(r.out.split('\n')[0], '/t');
  assert.deepEqual(await found(), ALL);
  const zero = await lfs('find', cluster.spec('t', 'sub'), '-print0');
  assert.deepEqual(zero.out.split('\0').filter((s) => s).sort(), ['/t/sub', '/t/sub/c.c', '/t/sub/deep', '/t/sub/deep/d.c']);
});

test('-name matches the last name with shell patterns; ! negates', async () => {
  assert.deepEqual(await found('-name', '*.c'), ['/t/a.c', '/t/sub/c.c', '/t/sub/deep/d.c']);
  assert.deepEqual(await found('--name', '[ab]*'), ['/t/a.c', '/t/big.txt']);
  assert.deepEqual(await found('!', '-name', '*.c', '-type', 'f'), ['/t/big.txt']);
  assert.deepEqual(await found('-n', 't'), ['/t'], 'the starting point is named by its last component');
});

test('-type: d, f, l, p', async () => {
  assert.deepEqual(await found('-type', 'd'), ['/t', '/t/pooldir', '/t/sub', '/t/sub/deep']);
  assert.deepEqual(await found('-t', 'f'), ['/t/a.c', '/t/big.txt', '/t/sub/c.c', '/t/sub/deep/d.c']);
  assert.deepEqual(await found('-type', 'l'), ['/t/link'], 'links are not followed');
  assert.deepEqual(await found('-type', 'p'), ['/t/fifo']);
  assert.deepEqual(await found('!', '-type', 'd', '!', '-type', 'f'), ['/t/fifo', '/t/link']);
});

test('-size rounds up to its unit: +N is more than N units, -N fewer, N within the Nth', async () => {
  assert.deepEqual(await found('-size', '+1M'), ['/t/big.txt'], 'size from the objects, not the MDT');
  assert.deepEqual(await found('-size', '3M'), ['/t/big.txt']);
  assert.deepEqual(await found('-size', '2k', '-type', 'f'), ['/t/sub/c.c']);
  assert.deepEqual(await found('-type', 'f', '-size', '-1k'), ['/t/a.c', '/t/sub/deep/d.c'], '-1k: rounded up, less than one KiB is 0 bytes');
  assert.deepEqual(await found('-type', 'f', '-s', '1500'), ['/t/sub/c.c']);
  assert.deepEqual(await found('-type', 'f', '!', '-size', '0'), ['/t/big.txt', '/t/sub/c.c']);
});

test('-mtime in days (or with a unit); +N older, -N newer', async () => {
  assert.deepEqual(await found('-mtime', '+2'), ['/t/sub/c.c']);
  assert.deepEqual(await found('-M', '+71h'), ['/t/sub/c.c']);
  assert.deepEqual(await found('-type', 'f', '-mtime', '-1'), ['/t/a.c', '/t/big.txt', '/t/sub/deep/d.c']);
  assert.deepEqual(await found('-type', 'f', '-mtime', '3'), ['/t/sub/c.c'], '3: between 3 and 4 days old');
  assert.deepEqual(await found('-type', 'f', '-atime', '+2d'), ['/t/sub/c.c']);
});

test('layout tests: stripe count and size, OST, pool; directories by their default', async () => {
  assert.deepEqual(await found('-stripe-count', '3'), ['/t/big.txt']);
  assert.deepEqual(await found('-c', '+1'), ['/t/big.txt', '/t/sub', '/t/sub/c.c', '/t/sub/deep', '/t/sub/deep/d.c']);
  assert.deepEqual(await found('-type', 'f', '-stripe-count', '-2'), ['/t/a.c']);
  assert.deepEqual(await found('-stripe-size', '1M', '-type', 'f'), ['/t/sub/c.c', '/t/sub/deep/d.c']);
  assert.deepEqual(await found('-S', '+1M', '-type', 'f'), ['/t/a.c', '/t/big.txt']);
  for (const ost of [0, 1, 2]) {
    const expected = Object.entries(files)
      .filter(([, i]) => i.layout!.objects.some((o) => o.ostIdx === ost))
      .map(([n]) => (n === 'c.c' ? '/t/sub/c.c' : n === 'd.c' ? '/t/sub/deep/d.c' : `/t/${n}`))
      .sort();
    assert.deepEqual(await found('-ost', String(ost)), expected, `objects on OST${ost}`);
    assert.deepEqual(await found('-O', `${cluster.fsname}-OST000${ost}_UUID`), expected);
  }
  assert.deepEqual(await found('-O', '0-2', '-type', 'f'), ['/t/a.c', '/t/big.txt', '/t/sub/c.c', '/t/sub/deep/d.c']);
  assert.deepEqual(await found('--pool', 'flash'), ['/t/pooldir']);
  assert.deepEqual(await found('!', '--pool', 'flash', '-type', 'd'), ['/t', '/t/sub', '/t/sub/deep']);
});

test('-maxdepth and --mindepth bound the walk', async () => {
  assert.deepEqual(await found('-maxdepth', '0'), ['/t']);
  assert.deepEqual(await found('-D', '1'), ALL.filter((p) => p.split('/').length <= 3));
  assert.deepEqual(await found('--mindepth', '2'), ['/t/sub/c.c', '/t/sub/deep', '/t/sub/deep/d.c']);
  const files2 = await lfs('find', cluster.spec('t', 'big.txt'), cluster.spec('t', 'sub', 'c.c'));
  assert.deepEqual(files2.out, '/t/big.txt\n/t/sub/c.c\n', 'files as starting points are tested themselves');
});

test('usage errors: status 4 with the usage; a missing directory: status 1', async () => {
  for (const bad of [['-size', '12Q'], ['-type', 'x'], ['-mtime', 'yesterday'], ['-maxdepth', '-1'], ['--bogus'], ['!', '-maxdepth', '1'], ['-name']]) {
    const r = await lfs('find', cluster.spec('t'), ...bad);
    assert.equal(r.code, 4, `${bad.join(' ')}: ${r.err}`);
    assert.match(r.err, /^lfs: .+\nusage: find /, bad.join(' '));
  }
  const late = await lfs('find', '-type', 'f', cluster.spec('t'));
  assert.equal(late.code, 4);
  assert.match(late.err, /must come before the options/);
  const missing = await lfs('find', cluster.spec('nope'));
  assert.equal(missing.code, 1);
  assert.equal(missing.err, `lfs: cannot access '${cluster.spec('nope')}': No such file or directory\n`);
});

test('value comparisons follow Lustre find_value_cmp', () => {
  const s = parseFindSize('+1M', 'size');
  assert.deepEqual(s, { sign: -1, value: 1 << 20, unit: 1 << 20 });
  assert.equal(valueCmp((1 << 20) + 1, s.value, s.sign, s.unit), true);
  assert.equal(valueCmp(1 << 20, s.value, s.sign, s.unit), false);
  assert.deepEqual(parseFindSize('10b', 'size'), { sign: 0, value: 5120, unit: 512 }, 'b is 512-byte blocks');
  const now = 1_000_000;
  assert.deepEqual(parseFindTime('-90m', now), { sign: -1, limit: now - 5400, margin: 60 });
  assert.deepEqual(parseFindTime('1d12h', now), { sign: 0, limit: now - 129600, margin: 3600 });
  assert.deepEqual(parseFindTime('+2', now), { sign: 1, limit: now - 172800, margin: 86400 });
  assert.throws(() => parseFindTime('5x', now), /bad time/);
  assert.throws(() => parseFindTime('2000000d', now), /too large/);
  assert.ok(globToRegExp('*.[ch]').test('.x.c'), 'a leading dot is matched by *');
  assert.ok(!globToRegExp('[!a]?').test('ab'));
  assert.ok(globToRegExp('a\\*').test('a*') && !globToRegExp('a\\*').test('ab'));
});
