/**
 * `stria warmup` and `stria stats` end to end through a real mount (`stria mount
 * --cache-dir`, its own process): warming a directory puts all of its files in the disk
 * cache (--check 100 %), --evict drops them (--check 0 %), a read afterwards moves the
 * cache's counters in `stria stats --json`, and the cache's lctl parameters answer on
 * the mount's control socket.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { sh } from './helpers/mount.js';
import { lctl, parseParams } from './helpers/lctl.js';
import type { CacheStatsSnapshot } from '../src/client/cache/types.js';

const KiB = 1024;
const FILES_PER_DIR = 10;
const DIRS = 2;
const FILE_SIZE = 64 * KiB;
const TOTAL = FILES_PER_DIR * DIRS * FILE_SIZE;
const cred = { uid: 0, gid: 0 };

let cluster: TestCluster;
let base: string;
let mnt: string;
let proc: ChildProcess | undefined;
const output: string[] = [];

function stria(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [STRIA_BIN, ...args], { env: { ...process.env, STRIA_RUN_DIR: cluster.runDir }, timeout: 120_000 }, (e, stdout, stderr) =>
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out: stdout, err: stderr }),
    );
  });
}

/** `stria mount SPEC MNT --cache-dir DIR` in the background, until it says "mounted". */
async function mount(cacheDir: string): Promise<void> {
  const p = spawn(process.execPath, [STRIA_BIN, 'mount', cluster.spec(), mnt, '-o', 'allow_other', '--cache-dir', cacheDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, STRIA_LOG_LEVEL: 'info', STRIA_RUN_DIR: cluster.runDir },
  });
  proc = p;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mount did not come up:\n${output.slice(-20).join('\n')}`)), 30_000);
    p.stdout!.on('data', (d: Buffer) => {
      const s = d.toString();
      output.push(s.trimEnd());
      if (output.length > 200) output.shift();
      if (s.includes('"msg":"mounted"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    p.stderr!.on('data', (d: Buffer) => output.push(d.toString().trimEnd()));
    p.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`stria mount exited (${code ?? sig}):\n${output.slice(-20).join('\n')}`));
    });
  });
}

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  // the data set is written by another client, so it is on the OSTs before the mount reads it
  const writer = await cluster.mount();
  const data = await writer.mkdir(writer.root, 'data', { mode: 0o755, cred });
  for (let d = 0; d < DIRS; d++) {
    const dir = await writer.mkdir(data.fid, `d${d}`, { mode: 0o755, cred });
    for (let i = 0; i < FILES_PER_DIR; i++) {
      const f = await writer.create(dir.fid, `f${i}`, { mode: 0o644, cred });
      await writer.write(f, 0, Buffer.alloc(FILE_SIZE, d * FILES_PER_DIR + i));
      await writer.fsync(f);
      await writer.close(f);
    }
  }
  await writer.unmount();
  base = realpathSync(mkdtempSync(join(tmpdir(), 'stria-warmup-mnt-')));
  mnt = join(base, 'mnt');
  mkdirSync(mnt);
  mkdirSync(join(base, 'cache'));
  await mount(join(base, 'cache'));
});

after(async () => {
  const p = proc;
  if (p && p.exitCode === null && p.signalCode === null) {
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    await sh(`node ${STRIA_BIN} umount ${mnt}`);
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
  await sh(`umount -l ${mnt} 2>/dev/null; true`);
  await cluster?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

async function stats(): Promise<CacheStatsSnapshot> {
  const r = await stria('stats', '--json', mnt);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as CacheStatsSnapshot;
}

test('warmup fills the disk cache (check: 100 %), evict empties it (check: 0 %), a read then moves the counters', async () => {
  const files = FILES_PER_DIR * DIRS;
  const w = await stria('warmup', '-p', '4', '--json', join(mnt, 'data'));
  assert.equal(w.code, 0, w.err);
  const wj = JSON.parse(w.out) as Record<string, number>;
  assert.equal(wj.files, files);
  assert.equal(wj.failed, 0);
  assert.equal(wj.sizeBytes, TOTAL);

  const c = await stria('warmup', '--check', join(mnt, 'data'));
  assert.equal(c.code, 0, c.err);
  assert.equal(c.out, `cached: ${files} files, ${(TOTAL / KiB / KiB).toFixed(1)}/${(TOTAL / KiB / KiB).toFixed(1)} MiB (100.0%)\n`);

  const e = await stria('warmup', '--evict', '--json', join(mnt, 'data'));
  assert.equal(e.code, 0, e.err);
  const ej = JSON.parse(e.out) as Record<string, number>;
  assert.equal(ej.files, files);
  assert.ok(ej.droppedBytes! >= TOTAL, `dropped ${ej.droppedBytes} bytes`);

  const c0 = await stria('warmup', '--check', '--json', join(mnt, 'data'));
  assert.equal(c0.code, 0, c0.err);
  const c0j = JSON.parse(c0.out) as Record<string, number>;
  assert.equal(c0j.cachedBytes, 0);
  assert.equal(c0j.cachedPercent, 0);

  const s1 = await stats();
  assert.deepEqual(readFileSync(join(mnt, 'data', 'd1', 'f3')), Buffer.alloc(FILE_SIZE, FILES_PER_DIR + 3));
  const s2 = await stats();
  assert.ok(s2.memory.missBytes > s1.memory.missBytes, 'the read missed the memory cache');
  assert.ok(s2.oss.readBytes >= s1.oss.readBytes + FILE_SIZE, 'and went to the OSTs');
});

test('the cache parameters answer on the mount: max_cached_mb, read-ahead limits and stats, grant, max_dirty_mb', async () => {
  const r = await lctl(cluster.runDir, 'get_param', 'llite.*.max_cached_mb', 'llite.*.max_read_ahead_mb', 'llite.*.read_ahead_stats', 'osc.*.cur_grant_bytes', 'osc.*.max_dirty_mb');
  assert.equal(r.code, 0, r.stderr);
  const p = parseParams(r.stdout);
  const one = (re: RegExp) => [...p].filter(([k]) => re.test(k)).map(([, v]) => v);
  assert.match(one(/^llite\.[^.]+\.max_cached_mb$/)[0] ?? '', /^users: 1\nmax_cached_mb: \d+\nused_mb: \d+\nunused_mb: \d+\n$/);
  assert.match(one(/^llite\.[^.]+\.max_read_ahead_mb$/)[0] ?? '', /^\d+\n?$/);
  assert.match(one(/^llite\.[^.]+\.read_ahead_stats$/)[0] ?? '', /^snapshot_time +\d+\.\d{9} secs\.nsecs\n/);
  const grants = one(/^osc\..+\.cur_grant_bytes$/);
  assert.equal(grants.length, 2, 'one per OST');
  for (const g of grants) assert.match(g, /^\d+\n?$/);

  const s = await lctl(cluster.runDir, 'set_param', 'osc.*.max_dirty_mb=16');
  assert.equal(s.code, 0, s.stderr);
  const after = parseParams((await lctl(cluster.runDir, 'get_param', 'osc.*.max_dirty_mb')).stdout);
  for (const v of after.values()) assert.equal(v.trim(), '16');
});
