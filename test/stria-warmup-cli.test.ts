/**
 * `stria warmup` and `stria stats` as binaries, against a client serving its control
 * socket with the mount.info and cache.* commands (registerCacheCommands) and a cache that
 * keeps whole files read through the client. The mount table is a fixture
 * (STRIA_MOUNTINFO) naming a local directory, a copy of the filesystem's tree, as the
 * fuse.stria mount: the walk goes through it, the commands through the control socket.
 *
 * Covered: warmup of a tree loads every file and reports bytes loaded; --check shows
 * 100 % then 0 % after --evict; a second warmup loads nothing; per-file errors are
 * reported, counted and give exit status 1 while the other files are done; paths off
 * Stria and mounts no process serves are refused; stats --json and the view read the
 * mount's counters; cache commands resolve paths below the mounted fileset and refuse "..";
 * on a terminal a progress bar counts files and bytes, with errors printed above it, and
 * the stats view redraws its current line every second until the interval is over.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import type { StriaClient } from '../src/client/client.js';
import type { CacheStatsSnapshot, CacheTunables } from '../src/client/cache/types.js';
import { fidToString, type Fid } from '../src/common/fid.js';
import { registerCacheCommands } from '../src/ctl/cache-commands.js';
import type { ClientCache } from '../src/ctl/cache-params.js';
import { ControlServer } from '../src/ctl/control-server.js';
import { ParamRegistry } from '../src/ctl/params.js';
import { newClientInstance } from '../src/ctl/client-params.js';
import { StriaError } from '../src/common/errno.js';
import { PassThrough } from 'node:stream';
import { runWarmup } from '../src/cli/warmup.js';
import { runStats } from '../src/cli/cache-stats.js';
import { MountEndpoints } from '../src/cli/mount-endpoint.js';

const KiB = 1024;
const MiB = 1 << 20;
const cred = { uid: 0, gid: 0 };

/** A cache of whole files, read through the client: what warmup/check/evict act on. */
class WholeFileCache implements ClientCache {
  readonly files = new Map<string, Buffer>();
  tunables: CacheTunables = { maxCachedBytes: 64 * MiB, maxReadAheadBytes: 64 * MiB, maxReadAheadPerFileBytes: 16 * MiB, maxReadAheadWholeBytes: 4 * MiB, maxDirtyBytesPerOst: 32 * MiB };
  private loaded = { bytes: 0, requests: 0 };

  constructor(private readonly client: StriaClient) {}

  async warmup(fid: Fid) {
    const key = fidToString(fid);
    const attr = await this.client.getattr(fid);
    if (this.files.get(key)?.length === attr.size) return { size: attr.size, loadedBytes: 0 };
    const f = await this.client.open(fid);
    try {
      const data = await this.client.read(f, 0, attr.size);
      this.files.set(key, data);
      this.loaded.bytes += data.length;
      this.loaded.requests++;
      return { size: attr.size, loadedBytes: data.length };
    } finally {
      await this.client.close(f);
    }
  }

  async check(fid: Fid) {
    const attr = await this.client.getattr(fid);
    return { size: attr.size, cachedBytes: this.files.get(fidToString(fid))?.length ?? 0 };
  }

  async evict(fid: Fid) {
    const key = fidToString(fid);
    const n = this.files.get(key)?.length ?? 0;
    this.files.delete(key);
    return n;
  }

  stats(): CacheStatsSnapshot {
    const held = [...this.files.values()].reduce((a, b) => a + b.length, 0);
    return {
      memory: { hitBytes: 0, hitRequests: 0, missBytes: this.loaded.bytes, missRequests: this.loaded.requests, cachedBytes: held, maxBytes: this.tunables.maxCachedBytes, pageSize: 65536 },
      ssd: { hitBytes: 0, hitRequests: 0, missBytes: 0, missRequests: 0, enabled: false, cachedBytes: 0, maxBytes: 0, errors: 0, dirs: [] },
      oss: { readBytes: this.loaded.bytes, readRequests: this.loaded.requests, writeBytes: 0, writeRequests: 0 },
      dirtyBytes: 0,
      maxDirtyBytes: this.tunables.maxDirtyBytesPerOst,
      grantBytes: 0,
      readahead: { hits: 0, misses: 0, readaheadBytes: 0, wholeFileReads: 0, stridedWindows: 0 },
    };
  }
}

/** The tree, in the filesystem and as local copies: path → size */
const TREE: Record<string, number> = {
  'data/a/f1': 64 * KiB,
  'data/a/f2': 64 * KiB,
  'data/a/deeper/f3': 100 * KiB,
  'data/b/f4': 300 * KiB,
  'data/b/empty': 0,
  'data/top': 1,
};
const TOTAL = Object.values(TREE).reduce((a, b) => a + b, 0);

let cluster: TestCluster;
let client: StriaClient;
let cache: WholeFileCache;
let server: ControlServer;
let base: string;
let mnt: string;
let mountinfo: string;

async function stria(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [STRIA_BIN, ...args],
      { env: { ...process.env, STRIA_RUN_DIR: cluster.runDir, STRIA_MOUNTINFO: mountinfo }, timeout: 60_000 },
      (e, stdout, stderr) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out: stdout, err: stderr }),
    );
  });
}

async function mkdirs(path: string[]): Promise<Fid> {
  let dir = client.root;
  for (const name of path) {
    dir = await client.lookup(dir, name).then(
      (a) => a.fid,
      async () => (await client.mkdir(dir, name, { mode: 0o755, cred })).fid,
    );
  }
  return dir;
}

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  client = await cluster.mount();
  base = realpathSync(mkdtempSync(join(tmpdir(), 'stria-warmup-')));
  mnt = join(base, 'mnt');
  for (const [path, size] of Object.entries(TREE)) {
    const parts = path.split('/');
    const dir = await mkdirs(parts.slice(0, -1));
    const f = await client.create(dir, parts[parts.length - 1]!, { mode: 0o644, cred, layout: { stripeCount: 2, stripeSize: 64 * KiB } });
    if (size > 0) await client.write(f, 0, Buffer.alloc(size, parts.length));
    await client.close(f);
    mkdirSync(join(mnt, ...parts.slice(0, -1)), { recursive: true });
    writeFileSync(join(mnt, path), Buffer.alloc(size));
  }
  // only in the local copy: the filesystem has no such file
  writeFileSync(join(mnt, 'data', 'b', 'ghost'), 'x');
  mkdirSync(join(base, 'elsewhere'));
  mkdirSync(join(base, 'unserved'));
  mountinfo = join(base, 'mountinfo');
  writeFileSync(
    mountinfo,
    [
      '27 1 8:1 / / rw - ext4 /dev/sda1 rw',
      `61 27 0:51 / ${mnt} rw,nosuid,nodev - fuse.stria ${cluster.spec()} rw,user_id=0,group_id=0`,
      `62 27 0:52 / ${join(base, 'unserved')} rw,nosuid,nodev - fuse.stria ${cluster.spec()} rw,user_id=0,group_id=0`,
      '',
    ].join('\n'),
  );
  cache = new WholeFileCache(client);
  const registry = new ParamRegistry();
  const instance = newClientInstance();
  registerCacheCommands(registry, client, cache, { instance, mountpoint: mnt });
  server = await ControlServer.start(registry, { role: 'client', id: instance, dir: cluster.runDir });
});

after(async () => {
  await server?.close();
  await client?.unmount();
  await cluster?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

test('warmup loads every file of the tree; check says 100 %; evict drops them all; check then says 0 %', async () => {
  const files = Object.keys(TREE).length;
  const w = await stria('warmup', '-p', '3', '--json', join(mnt, 'data', 'a'), join(mnt, 'data', 'b', 'f4'), join(mnt, 'data', 'b', 'empty'), join(mnt, 'data', 'top'));
  assert.equal(w.code, 0, w.err);
  const wj = JSON.parse(w.out) as Record<string, number>;
  assert.deepEqual({ ...wj, seconds: 0 }, { mode: 'warmup', files, failed: 0, sizeBytes: TOTAL, loadedBytes: TOTAL, seconds: 0 });
  assert.equal(cache.files.size, files - 0, 'every file is held, the empty one too');

  const check = await stria('warmup', '--check', join(mnt, 'data'));
  // the ghost file exists only in the local copy: reported, counted, the rest done
  assert.equal(check.code, 1);
  assert.equal(check.out, `cached: ${files} files, ${(TOTAL / KiB).toFixed(1)}/${(TOTAL / KiB).toFixed(1)} KiB (100.0%), 1 failed\n`);
  assert.match(check.err, new RegExp(`^stria warmup: ${join(mnt, 'data', 'b', 'ghost')}: .*\\n$`));

  const again = await stria('warmup', join(mnt, 'data', 'a'));
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, /^warmup: 3 files, 0 B loaded into the cache in \d+\.\d s \(0 B\/s\); 228\.0 KiB was already cached\n$/);

  const ev = await stria('warmup', '--evict', '--json', join(mnt, 'data', 'a'), join(mnt, 'data', 'b', 'f4'), join(mnt, 'data', 'b', 'empty'), join(mnt, 'data', 'top'));
  assert.equal(ev.code, 0, ev.err);
  assert.equal((JSON.parse(ev.out) as { droppedBytes: number }).droppedBytes, TOTAL);
  assert.equal(cache.files.size, 0);

  const after = await stria('warmup', '--check', '--json', join(mnt, 'data', 'a'));
  assert.equal(after.code, 0, after.err);
  const aj = JSON.parse(after.out) as Record<string, number>;
  assert.equal(aj.cachedBytes, 0);
  assert.equal(aj.cachedPercent, 0);
  assert.equal(aj.files, 3);
});

test('paths off Stria, missing paths and mounts no running process serves are errors with exit status 1', async () => {
  const r = await stria('warmup', join(base, 'elsewhere'), join(mnt, 'nope'), join(base, 'unserved'));
  assert.equal(r.code, 1);
  const lines = r.err.trim().split('\n');
  assert.deepEqual(lines, [
    `stria warmup: ${join(base, 'elsewhere')}: not on a Stria filesystem`,
    `stria warmup: ${join(mnt, 'nope')}: No such file or directory`,
    `stria warmup: ${join(base, 'unserved')}: no running stria mount process serves ${join(base, 'unserved')} (its control socket should be in $STRIA_RUN_DIR or /run/stria)`,
  ]);
  assert.equal(r.out, 'warmup: 0 files, 0 B loaded into the cache in ' + r.out.split(' in ')[1]);
  assert.match(r.out, /, 3 failed\n$/);
});

test('stats --json prints the mount\'s snapshot; the view prints a header and one line per interval', async () => {
  await stria('warmup', join(mnt, 'data', 'b', 'f4'));
  const j = await stria('stats', '--json', mnt);
  assert.equal(j.code, 0, j.err);
  const lines = j.out.trim().split('\n');
  assert.equal(lines.length, 1);
  assert.deepEqual(JSON.parse(lines[0]!), cache.stats());

  const two = await stria('stats', '--json', '--count', '2', '--interval', '0.1', join(mnt, 'data'));
  assert.equal(two.code, 0, two.err);
  assert.equal(two.out.trim().split('\n').length, 2);

  const v = await stria('stats', '-c', '3', '-i', '0.1', mnt);
  assert.equal(v.code, 0, v.err);
  const out = v.out.split('\n');
  assert.match(out[0]!, /mem MiB\/s/);
  assert.match(out[1]!, /hit +miss/);
  assert.equal(out.length, 2 + 3 + 1);
  for (const row of out.slice(2, 5)) assert.equal(row.trim().split(/\s+/).length, 10, row);

  const bad = await stria('stats', join(base, 'elsewhere'));
  assert.equal(bad.code, 1);
  assert.equal(bad.err, `stria stats: ${join(base, 'elsewhere')}: not on a Stria filesystem\n`);
});

test('the cache commands resolve paths below the mounted fileset, and refuse ".." and directories', async () => {
  const reg = new ParamRegistry();
  registerCacheCommands(reg, client, cache, { instance: 'ffff000000000002', fileset: ['data', 'b'] });
  const run = (name: string, args: unknown) => Promise.resolve(reg.commandNamed(name)!(args));
  assert.deepEqual(await run('mount.info', undefined), { fsname: cluster.fsname, fileset: ['data', 'b'], instance: 'ffff000000000002', pid: process.pid });
  await run('cache.evict', { path: 'f4' });
  assert.deepEqual(await run('cache.warmup', { path: 'f4' }), { size: 300 * KiB, loadedBytes: 300 * KiB });
  assert.deepEqual(await run('cache.check', { path: ['f4'] }), { size: 300 * KiB, cachedBytes: 300 * KiB });
  assert.deepEqual(await run('cache.evict', { path: './f4' }), { size: 300 * KiB, droppedBytes: 300 * KiB });
  const code = (c: string) => (e: unknown) => e instanceof StriaError && e.code === c;
  await assert.rejects(run('cache.check', { path: '../a/f1' }), code('BAD_CACHE_PATH'));
  await assert.rejects(run('cache.check', { path: 3 }), code('BAD_CACHE_ARGS'));
  await assert.rejects(run('cache.check', { path: '' }), code('NOT_REGULAR_FILE'));
  await assert.rejects(run('cache.check', { path: 'nope' }), (e: unknown) => e instanceof StriaError && e.code === 'ENOENT');
});

test('on a terminal a progress bar counts the files and bytes done, and errors are printed above it', async () => {
  const term = Object.assign(new PassThrough(), { isTTY: true, columns: 120 });
  let drawn = '';
  term.on('data', (d: Buffer) => (drawn += d.toString()));
  const endpoints = new MountEndpoints({ runDir: cluster.runDir, mountinfo });
  const t = await runWarmup([join(mnt, 'data', 'b')], 'check', 2, { err: term, progress: true, endpoints });
  assert.deepEqual({ files: t.files, failed: t.failed }, { files: 2, failed: 1 });
  assert.match(drawn, /check \|.*\| 3\/3 files \| 300\.0 KiB of 300\.0 KiB/);
  assert.match(drawn, new RegExp(`stria warmup: ${join(mnt, 'data', 'b', 'ghost')}: `));
});

test('on a terminal the stats view redraws the current line each second until its interval is over', async () => {
  const term = Object.assign(new PassThrough(), { isTTY: true });
  let drawn = '';
  term.on('data', (d: Buffer) => (drawn += d.toString()));
  const endpoints = new MountEndpoints({ runDir: cluster.runDir, mountinfo });
  await runStats(mnt, { interval: 1.5, count: 1, json: false }, { out: term, refresh: true, endpoints });
  const lines = drawn.split('\n');
  assert.equal(lines.length, 4, 'two header lines, one row, nothing after the last newline');
  assert.equal(lines[3], '');
  const redraws = lines[2]!.split('\r').slice(1);
  assert.equal(redraws.length, 2, 'the row as of 1 s, then as of 1.5 s');
  for (const r of redraws) assert.match(r, /^( +\d+(\.\d)?){10}\x1b\[K$/);
});
