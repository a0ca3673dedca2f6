/**
 * The policy engine on a real cluster (MGS, MDS, 2 OSS as processes; the OSTs on small
 * tmpfs mounts so their usage is whatever the test writes) with a real copytool
 * (`stria copytool --posix`): files are archived once old enough and again once changed,
 * never when a rule excludes them; an OST above the high watermark gets its least recently
 * accessed archived files released, coldest first, until it is below the low watermark
 * and no further; the archive copy of a deleted file is removed once remove.after passed.
 * The engine's clock is moved forward instead of waiting; the files' times are real.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { counter, lctl } from './helpers/lctl.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { silentLogger } from '../src/common/log.js';
import { fidToString, type Fid } from '../src/common/fid.js';
import { HS } from '../src/hsm/flags.js';
import { parsePolicyConfigText } from '../src/hsm/policy/config.js';
import { PolicyEngine } from '../src/hsm/policy/engine.js';
import type { StriaClient } from '../src/client/client.js';

const FS = 'poltest';
const MiB = 1 << 20;
const OST_MIB = 64;
const cred = { uid: 0, gid: 0 };
const H = 3600_000;
const WAIT_MS = 60_000;

let cluster: TestCluster;
let c: StriaClient;
let base: string;
let archiveDir: string;
let copytool: ChildProcess | undefined;
const mounted: string[] = [];
let clock = Date.now();
const engines: PolicyEngine[] = [];

/** Puts OST `i`'s directory on a tmpfs of `mib` MiB, every read updating access times (the OSS is restarted over it). */
async function ostOnTmpfs(i: number, mib: number): Promise<void> {
  const dir = cluster.ostDir(i);
  const saved = join(base, `ost${i}-saved`);
  await cluster.kill9(`oss${i}`);
  execFileSync('cp', ['-a', dir, saved]);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,strictatime`, 'tmpfs', dir]);
  mounted.push(dir);
  execFileSync('cp', ['-a', `${saved}/.`, dir]);
  rmSync(saved, { recursive: true, force: true });
  await cluster.startRole(`oss${i}`);
}

async function startCopytool(): Promise<void> {
  const proc = spawn(process.execPath, [STRIA_BIN, 'copytool', '--archive', '1', '--posix', archiveDir, cluster.spec()], {
    env: { ...process.env, STRIA_LOG_LEVEL: 'info', STRIA_RUN_DIR: cluster.runDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  copytool = proc;
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`copytool did not start:\n${out}`)), 20_000);
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('"copytool started"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`copytool exited (${code}):\n${out}`));
    });
  });
}

async function engine(name: string, yaml: string): Promise<PolicyEngine> {
  const e = await PolicyEngine.open({
    client: c, config: parsePolicyConfigText(yaml), stateDir: join(base, `state-${name}`), log: silentLogger(), now: () => clock,
  });
  engines.push(e);
  return e;
}

async function write(dir: Fid, name: string, bytes: number, ost: number): Promise<Fid> {
  const f = await c.create(dir, name, { mode: 0o644, cred, layout: { stripeCount: 1, stripeOffset: ost } });
  await c.write(f, 0, pseudoRandomBuffer(bytes, name.length * 7919 + bytes));
  await c.fsync(f);
  await c.close(f);
  return f.fid;
}

const flags = async (fid: Fid) => (await c.hsm.state(fid)).flags;

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const archived = async (fid: Fid) => ((await flags(fid)) & (HS.EXISTS | HS.ARCHIVED | HS.DIRTY)) === (HS.EXISTS | HS.ARCHIVED);

/** every file under the archive directory whose name holds the FID */
function copiesOf(fid: Fid): string[] {
  const want = fidToString(fid);
  const found: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n.startsWith(want)) found.push(p);
    }
  };
  walk(archiveDir);
  return found;
}

async function usedPercent(ost: number): Promise<number> {
  const s = await c.ostClients().find((o) => o.index === ost)!.statfs();
  const used = (s.blocks - s.bfree) * s.bsize;
  return (used / (used + s.bavail * s.bsize)) * 100;
}

before(async () => {
  base = mkdtempSync(join(tmpdir(), 'stria-policy-'));
  archiveDir = join(base, 'archive');
  mkdirSync(archiveDir);
  cluster = await TestCluster.start({ osts: 2, fsname: FS });
  await ostOnTmpfs(0, OST_MIB);
  await ostOnTmpfs(1, OST_MIB);
  await cluster.waitOstsReady();
  c = await cluster.mount();
  await startCopytool();
});

after(async () => {
  for (const e of engines) await e.close().catch(() => undefined);
  copytool?.kill('SIGKILL');
  await c?.unmount().catch(() => undefined);
  if (cluster) for (const name of cluster.roles.keys()) await cluster.kill9(name);
  for (const m of mounted) execFileSync('umount', ['-l', m]);
  await cluster?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

test('files are archived once older than the rule says, again once changed, never when excluded', async () => {
  const e = await engine('archive', `
archive:
  rules:
    - name: work
      path: /work/**
      exclude: "*.tmp"
      older_than: 1h
`);
  const work = await c.mkdir(c.root, 'work', { mode: 0o755, cred });
  const a = await write(work.fid, 'a.dat', MiB, 1);
  const b = await write(work.fid, 'b.dat', 200 * 1024, 1);
  const tmp = await write(work.fid, 'scratch.tmp', 4096, 1);
  clock = Date.now();

  let r = await e.cycle();
  assert.ok(r.records > 0 && r.refreshed >= 3, `the changelog fed the index: ${JSON.stringify(r)}`);
  assert.equal(r.archived, 0, 'too recent');

  clock += 2 * H;
  r = await e.cycle();
  assert.equal(r.archived, 2);
  await until('a and b are archived', async () => (await archived(a)) && (await archived(b)));
  assert.equal(await flags(tmp), 0, 'excluded by the rule');
  assert.equal(copiesOf(a).length > 0, true, 'the copy is in the archive directory');

  r = await e.cycle();
  assert.equal(r.archived, 0, 'nothing needs an archive any more');

  // written again: dirty, archived again once old enough
  const f = await c.open(a, 1);
  await c.write(f, 0, Buffer.from('changed'));
  await c.close(f);
  await until('a is dirty', async () => ((await flags(a)) & HS.DIRTY) !== 0);
  clock = Date.now();
  r = await e.cycle();
  assert.equal(r.archived, 0, 'changed just now');
  clock += 2 * H;
  r = await e.cycle();
  assert.equal(r.archived, 1);
  await until('a is archived again', () => archived(a));
});

test('an OST above the high watermark has its coldest archived files released until it is below the low one', async () => {
  const FILES = 12;
  const FILE = 4 * MiB;
  const e = await engine('release', `
archive:
  rules:
    - { name: cold, path: /cold/**, older_than: 1m }
release:
  high_watermark: 60%
  low_watermark: 45%
  osts: [0]
`);
  const dir = await c.mkdir(c.root, 'cold', { mode: 0o755, cred });
  const fids: Fid[] = [];
  for (let i = 0; i < FILES; i++) fids.push(await write(dir.fid, `f${i}`, FILE, 0));
  const before = await usedPercent(0);
  assert.ok(before > 60, `the OST is above the high watermark (${before.toFixed(1)}%)`);

  clock = Date.now() + 2 * 60_000;
  let r = await e.cycle();
  assert.equal(r.archived, FILES);
  await until('every file is archived', async () => (await Promise.all(fids.map(archived))).every(Boolean));

  // read in a shuffled order (the OSTs keep strict access times): the release order must
  // follow these accesses, which no changelog record reports, not the order of creation
  const order = [7, 2, 10, 0, 5, 11, 3, 8, 1, 9, 4, 6];
  for (const i of order) {
    const f = await c.open(fids[i]!);
    assert.equal((await c.read(f, FILE - 10, 10)).length, 10);
    await c.close(f);
    await new Promise((r) => setTimeout(r, 30));
  }

  r = await e.cycle();
  assert.ok(r.released > 0, JSON.stringify(r));
  const released: boolean[] = [];
  for (const fid of fids) released.push(((await flags(fid)) & HS.RELEASED) !== 0);
  const k = released.filter(Boolean).length;
  assert.equal(k, r.released);
  assert.deepEqual(order.map((i) => released[i]), order.map((_, rank) => rank < k), 'the k least recently accessed files, no other');

  // the space really comes back (objects are destroyed after the release), and no more than needed went
  await until('the OST frees the released objects', async () => (await usedPercent(0)) < 45);
  const after = await usedPercent(0);
  const oneFile = (FILE / (OST_MIB * MiB)) * 100;
  assert.ok(after + oneFile >= 45, `stopped at the low watermark: ${after.toFixed(1)}% + one file ${oneFile.toFixed(1)}% would be above 45%`);

  r = await e.cycle();
  assert.equal(r.released, 0, 'below the high watermark: nothing more');
  // released files keep their size
  assert.equal((await c.getattr(fids[order[0]!]!)).size, FILE);
});

test('the archive copy of a deleted file is removed once remove.after has passed', async () => {
  const e = await engine('remove', `
archive:
  rules:
    - { name: gone, path: /gone/**, older_than: 1m }
remove:
  after: 1d
`);
  const dir = await c.mkdir(c.root, 'gone', { mode: 0o755, cred });
  const fid = await write(dir.fid, 'doomed', 300 * 1024, 1);
  clock = Date.now() + 2 * 60_000;
  assert.equal((await e.cycle()).archived, 1);
  await until('the file is archived', () => archived(fid));
  assert.ok(copiesOf(fid).length > 0);

  await c.unlink(dir.fid, 'doomed');
  let r = await e.cycle();
  assert.equal(r.deleted, 1);
  assert.equal(r.removed, 0, 'not before remove.after');
  assert.equal(e.index.removalCount(), 1);
  assert.ok(copiesOf(fid).length > 0, 'the copy is still there');

  clock += 2 * 86_400_000;
  r = await e.cycle();
  assert.equal(r.removed, 1);
  assert.equal(e.index.removalCount(), 0);
  await until('the copy is gone from the archive', async () => copiesOf(fid).length === 0);
});

test('a cycle with nothing new reads no file: the namespace is never scanned', async () => {
  const e = await engine('idle', `
archive:
  rules:
    - { name: later, path: /many/**, older_than: 30d }
`);
  const dir = await c.mkdir(c.root, 'many', { mode: 0o755, cred });
  for (let i = 0; i < 100; i++) await write(dir.fid, `m${i}`, 1024, 1);
  clock = Date.now();
  const getattrs = async () => {
    const r = await lctl(cluster.runDir, 'get_param', '-n', `mdt.${FS}-MDT0000.md_stats`);
    return counter(r.stdout, 'getattr')?.samples ?? 0;
  };
  const start = await getattrs();
  const first = await e.cycle();
  assert.ok(first.refreshed >= 100, 'the new files were read once, from the changelog');
  const before = await getattrs();
  assert.ok(before - start >= 100, `the MDT counts those reads (${before - start})`);
  const idle = await e.cycle();
  assert.equal(idle.records, 0);
  assert.equal(idle.archived, 0);
  assert.equal(await getattrs(), before, 'no file was looked at');
});
