/**
 * Crash safety of the namespace: a child process runs concurrent creates,
 * mkdirs, links, unlinks, renames (files and directories, across
 * directories, over existing targets), xattrs and open-unlink-close on one
 * store, and is SIGKILLed at random moments, several times. After each kill
 * the store must reopen consistent (fsck: every entry points to an inode,
 * link counts match entries, each directory has one name in its parent, no
 * half-done rename) and hold every operation the child saw acknowledged.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ROOT_FID, type Fid } from '../src/common/fid.js';
import { StriaError } from '../src/common/errno.js';
import { Namespace } from '../src/mds/namespace.js';
import { openLmdbStore } from '../src/mds/store/lmdb.js';
import { FidGen, FS_DEFAULT, fsck, mkLayout } from './helpers/namespace-fixture.js';

const CHILD_ENV = 'STRIA_NS_CRASH_CHILD';
const DIRS = ['d0', 'd1', 'd2', 'd3'];
const EXPECTED = new Set(['ENOENT', 'EEXIST', 'ENOTEMPTY', 'EINVAL', 'ENOTDIR', 'EISDIR', 'EPERM', 'EBUSY']);

if (process.env[CHILD_ENV]) {
  await child(process.env[CHILD_ENV]);
} else {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'stria-nscrash-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('SIGKILL during namespace operations leaves a consistent namespace with every acknowledged change', { timeout: 300_000 }, async (t) => {
    const storeDir = path.join(tmp, 'mdt');
    let totalAcks = 0;
    for (let round = 0; round < 5; round++) {
      const { acks, stats } = await runAndKill(storeDir, 300 + Math.floor(Math.random() * 1200));
      const store = await openLmdbStore(storeDir);
      try {
        const ns = new Namespace(store, { fsDefault: FS_DEFAULT });
        await ns.init();
        const before = await fsck(store);
        const log = await ns.lookup(ROOT_FID, 'acks');
        for (const a of acks) await ns.lookup(log.fid, a); // throws if an acknowledged create is missing
        const orphanObjects = await ns.cleanupOrphans();
        const afterCleanup = await fsck(store);
        t.diagnostic(`round ${round}: ${acks.length} acknowledged (${stats}); ${before.inodes} inodes, ${before.entries} entries; ${orphanObjects.length} orphan objects reclaimed; ${afterCleanup.inodes} inodes after`);
        totalAcks += acks.length;
      } finally {
        await store.close();
      }
    }
    assert.ok(totalAcks > 0, 'the child made progress');
  });
}

async function runAndKill(storeDir: string, ms: number): Promise<{ acks: string[]; stats: string }> {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, [CHILD_ENV]: storeDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const acks: string[] = [];
  let stats = '';
  let stderr = '';
  let buf = '';
  let ready!: () => void;
  const started = new Promise<void>((r) => (ready = r));
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      if (l === 'ready') ready();
      else if (l.startsWith('ack ')) acks.push(l.slice(4));
      else if (l.startsWith('stats ')) stats = l.slice(6);
    }
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  await Promise.race([started, exited]);
  await new Promise((r) => setTimeout(r, ms));
  proc.kill('SIGKILL');
  const { code, signal } = await exited;
  assert.equal(signal, 'SIGKILL', `the child ran until killed (exit ${code}): ${stderr}`);
  return { acks, stats };
}

/** The child: an MDS start-up, then random namespace traffic until killed. */
async function child(storeDir: string): Promise<void> {
  const store = await openLmdbStore(storeDir);
  const ns = new Namespace(store, { fsDefault: FS_DEFAULT });
  await ns.init();
  await ns.cleanupOrphans();
  const fids = new FidGen(await ns.allocSequence());
  const ensureDir = async (parent: Fid, name: string): Promise<Fid> => {
    try {
      return (await ns.create(parent, name, { fid: fids.next(), type: 'dir', mode: 0o755, uid: 0, gid: 0 })).fid;
    } catch (e) {
      if ((e as StriaError).code !== 'EEXIST') throw e;
      return (await ns.lookup(parent, name)).fid;
    }
  };
  const log = await ensureDir(ROOT_FID, 'acks');
  const tops = await Promise.all(DIRS.map((d) => ensureDir(ROOT_FID, d)));
  const run = fids.next().seq.toString(16);
  let seq = 0;
  let oid = 1;
  const counts = new Map<string, number>();
  const pick = <T>(a: T[]): T => a[Math.floor(Math.random() * a.length)]!;
  const name = () => `n${Math.floor(Math.random() * 40)}`;

  const someParent = async (): Promise<Fid> => {
    const top = pick(tops);
    if (Math.random() < 0.5) return top;
    const subs = (await ns.readdir(top, 0, 100)).entries.filter((e) => e.type === 'dir');
    return subs.length ? pick(subs).fid : top;
  };
  const someEntry = async (): Promise<{ parent: Fid; name: string; type: string; fid: Fid } | undefined> => {
    const parent = await someParent();
    const es = (await ns.readdir(parent, 0, 100)).entries;
    if (es.length === 0) return undefined;
    const e = pick(es);
    return { parent, name: e.name, type: e.type, fid: e.fid };
  };

  const ops: Array<[string, () => Promise<unknown>]> = [
    ['create', async () => ns.create(await someParent(), name(), { fid: fids.next(), type: 'reg', mode: 0o644, uid: 1, gid: 1, layout: mkLayout([{ ostIdx: 0, seq: 0x100000000, oid: oid++ }]) })],
    ['mkdir', async () => ns.create(await someParent(), name(), { fid: fids.next(), type: 'dir', mode: 0o755, uid: 1, gid: 1 })],
    ['link', async () => {
      const e = await someEntry();
      if (e) await ns.link(e.fid, await someParent(), name());
    }],
    ['unlink', async () => {
      const e = await someEntry();
      if (e) await ns.unlink(e.parent, e.name, { dir: e.type === 'dir' });
    }],
    ['rename', async () => {
      const e = await someEntry();
      if (e) await ns.rename(e.parent, e.name, await someParent(), name(), { exchange: Math.random() < 0.1 });
    }],
    ['xattr', async () => {
      const e = await someEntry();
      if (e) await ns.setxattr(e.fid, `trusted.k${Math.floor(Math.random() * 3)}`, Buffer.alloc(Math.floor(Math.random() * 300)), {});
    }],
    ['open-unlink', async () => {
      const e = await someEntry();
      if (!e || e.type === 'dir') return;
      await ns.open(e.fid);
      await ns.unlink(e.parent, e.name, { dir: false });
      if (Math.random() < 0.5) await ns.close(e.fid); // otherwise left open: an orphan at the kill
    }],
    ['ack', async () => {
      const n = `${run}-${seq++}`;
      await ns.create(log, n, { fid: fids.next(), type: 'reg', mode: 0o644, uid: 0, gid: 0 });
      process.stdout.write(`ack ${n}\n`);
    }],
  ];

  process.stdout.write('ready\n');
  const deadline = Date.now() + 60_000;
  const worker = async () => {
    for (let i = 0; i < 1_000_000 && Date.now() < deadline; i++) {
      const [what, op] = pick(ops);
      try {
        await op();
        counts.set(what, (counts.get(what) ?? 0) + 1);
      } catch (e) {
        if (!(e instanceof StriaError) || !EXPECTED.has(e.code)) {
          process.stderr.write(`unexpected failure in ${what}: ${(e as Error).stack}\n`);
          process.exit(3);
        }
      }
      if (i % 50 === 0) process.stdout.write(`stats ${[...counts].map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  await store.close();
}
