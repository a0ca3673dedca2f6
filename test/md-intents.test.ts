/**
 * Metadata intents and what they let a mount cache (reference §3.6): a lookup grants a
 * name lock (LOOKUP) and an attribute lock (UPDATE|PERM|XATTR|LAYOUT) apart, a getattr by
 * FID the attribute lock only; an update revokes only the locks whose bits it changes. So
 * a create in a directory costs the directory its attribute lock, never its name: the
 * kernel keeps the directory's dentry (and the dentries below it) and does not look the
 * directory up again. Proved with lock state and the MDT's md_stats, never with timings.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fidKey, type Fid } from '../src/common/fid.js';
import { silentLogger } from '../src/common/log.js';
import type { StriaClient } from '../src/client/client.js';
import { parseFsSpec } from '../src/client/fs-spec.js';
import { mountStria, type MountedStria } from '../src/fuse/mount.js';
import { parseMountOptions } from '../src/fuse/mount-options.js';
import { InodeBit } from '../src/ldlm/inodebits.js';
import type { ClientLock } from '../src/ldlm/client.js';
import { TestCluster } from './helpers/cluster.js';
import { counter, lctl, parseParams } from './helpers/lctl.js';
import { sh } from './helpers/mount.js';
import { mountSkip } from './helpers/two-mounts.js';

const root = { uid: 0, gid: 0 };
const NAME = InodeBit.LOOKUP;
const ATTRS = InodeBit.UPDATE | InodeBit.PERM | InodeBit.XATTR | InodeBit.LAYOUT;
const CREATES = 100;
/** kernel dentries the machine may drop meanwhile (memory pressure, drop_caches) cost a lookup each */
const SLACK = 5;

/** The client's granted MDT locks on an inode. */
function mdLocks(c: StriaClient, fid: Fid): ClientLock[] {
  return c.dlm.mdc!.locksOn(fidKey(fid));
}

function withBits(c: StriaClient, fid: Fid, bits: number): ClientLock[] {
  return mdLocks(c, fid).filter((l) => l.bits === bits && c.dlm.mdc!.isValid(l));
}

async function shOk(cmd: string): Promise<string> {
  const r = await sh(cmd, { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
  return r.stdout.trim();
}

describe('metadata intents: name and attribute locks apart', { skip: mountSkip }, () => {
  let cluster: TestCluster;
  let base: string;
  let mounted: MountedStria;
  /** the mount's client */
  let m: StriaClient;
  /** another client of the same filesystem, without a mount */
  let other: StriaClient;

  const mdGetattrs = async (): Promise<number> => {
    const r = await lctl(cluster.runDir, 'get_param', 'mdt.*.md_stats');
    assert.equal(r.code, 0, r.stderr);
    const md = parseParams(r.stdout).get(`mdt.${cluster.fsname}-MDT0000.md_stats`) ?? '';
    return counter(md, 'getattr')?.samples ?? 0;
  };
  const path = (...parts: string[]) => join(base, 'mnt', ...parts);
  const fidOf = async (c: StriaClient, ...names: string[]): Promise<Fid> => {
    let fid = c.root;
    for (const n of names) fid = (await c.lookup(fid, n)).fid;
    return fid;
  };

  before(async () => {
    cluster = await TestCluster.start({ osts: 2 });
    base = await mkdtemp(join(tmpdir(), 'stria-md-intents-'));
    await sh(`mkdir -p ${path()} && chmod 755 ${base}`);
    mounted = await mountStria(parseFsSpec(cluster.spec()), path(), parseMountOptions(''), silentLogger());
    m = mounted.client;
    other = await cluster.mount();
  }, { timeout: 120_000 });

  after(async () => {
    await mounted?.close();
    await other?.unmount();
    await cluster?.stop();
    await sh(`umount -l ${path()} 2>/dev/null; true`);
    if (base) await rm(base, { recursive: true, force: true });
  }, { timeout: 120_000 });

  test('a lookup grants a name lock and an attribute lock apart; a getattr by FID the attribute lock only', async () => {
    const d = await other.mkdir(other.root, 'grants', { mode: 0o755, cred: root });
    await other.close(await other.create(d.fid, 'f', { mode: 0o644, cred: root }));
    const c = await cluster.mount();
    try {
      const a = await c.lookup(other.root, 'grants');
      assert.equal(a.covered, true, 'the attributes were read under a lock');
      assert.equal(a.nameCovered, true, 'the name was resolved under a lock');
      assert.deepEqual(mdLocks(c, d.fid).map((l) => l.bits).sort(), [NAME, ATTRS], 'one LOOKUP lock and one attribute lock');

      const f = await c.lookup(d.fid, 'f');
      await c.lookup(d.fid, 'f');
      assert.equal(mdLocks(c, f.fid).length, 2, 'looking the name up again reuses the locks held');

      const byFid = await c.getattr(d.fid);
      assert.equal(byFid.covered, true);
      assert.equal(byFid.nameCovered, undefined, 'a getattr by FID resolves no name');
      const d2 = await other.mkdir(other.root, 'byfid', { mode: 0o755, cred: root });
      await c.getattr(d2.fid);
      assert.deepEqual(mdLocks(c, d2.fid).map((l) => l.bits), [ATTRS], 'by FID: the attribute lock only');
    } finally {
      await c.unmount();
    }
  });

  test(`${CREATES} creates through the mount: the directory keeps its name lock, and no create looks it up again`, { timeout: 180_000 }, async () => {
    await shOk(`mkdir ${path('d')} && stat ${path('d')} > /dev/null`);
    const d = await fidOf(m, 'd');
    const [nameLock] = withBits(m, d, NAME);
    assert.ok(nameLock, 'the kernel looked the directory up: the mount holds its name lock');
    const ns = m.dlm.mdc!;
    const asts = ns.stats.blockingAsts;
    const early = ns.stats.earlyCancels;
    const g0 = await mdGetattrs();

    await shOk(`for i in $(seq 1 ${CREATES}); do : > ${path('d')}/f$i; done`);

    const perCreate = ((await mdGetattrs()) - g0) / CREATES;
    assert.ok(ns.isValid(nameLock) && mdLocks(m, d).includes(nameLock), 'the same LOOKUP lock on the directory is held throughout');
    assert.equal(ns.stats.blockingAsts, asts, 'the MDT never had to call a lock back');
    assert.ok(ns.stats.earlyCancels - early >= CREATES, 'each create cancelled the directory\'s attribute lock early');
    // Each create: the new name, looked up with its locks so it stays cached; and the
    // directory's attributes, which the kernel re-reads for its permission check once the
    // create made them stale. Looking the directory itself up again would make it three.
    assert.ok(perCreate <= 2 + SLACK / CREATES, `${perCreate} MDT getattr/lookup per create`);
    for (let i = 1; i <= CREATES; i += 33) {
      const f = await fidOf(m, 'd', `f${i}`);
      assert.equal(withBits(m, f, NAME).length, 1, `f${i}: its name is covered`);
      assert.equal(withBits(m, f, ATTRS).length, 1, `f${i}: its attributes are covered`);
    }

    // Unlinks cancel the child's locks and the directory's attribute lock early. Each costs
    // the directory's attributes again, and its name only if the kernel dropped the dentry
    // meanwhile (it may, under memory pressure): never a lookup of the directory.
    const g1 = await mdGetattrs();
    await shOk(`rm ${path('d')}/f*`);
    assert.equal(ns.stats.blockingAsts, asts, 'no lock had to be called back for the unlinks either');
    const perUnlink = ((await mdGetattrs()) - g1) / CREATES;
    assert.ok(perUnlink <= 2 + SLACK / CREATES, `${perUnlink} MDT getattr/lookup per unlink`);
    assert.ok(ns.isValid(nameLock), 'the directory\'s name lock outlived the unlinks');
    assert.equal(await shOk(`ls -A ${path('d')} | wc -l`), '0');
  });

  test('another client\'s create in a directory revokes the mount\'s attribute lock on it, not its name lock', { timeout: 60_000 }, async () => {
    await shOk(`mkdir ${path('shared')} && : > ${path('shared', 'a')} && stat ${path('shared')} > /dev/null`);
    const d = await fidOf(m, 'shared');
    const [nameLock] = withBits(m, d, NAME);
    const [attrLock] = withBits(m, d, ATTRS);
    assert.ok(nameLock && attrLock, 'the mount holds both locks on the directory');
    const asts = m.dlm.mdc!.stats.blockingAsts;

    await other.close(await other.create(d, 'b', { mode: 0o644, cred: root }));

    assert.equal(m.dlm.mdc!.stats.blockingAsts - asts, 1, 'one lock was called back');
    assert.ok(!m.dlm.mdc!.isValid(attrLock), 'the attribute lock went');
    assert.ok(m.dlm.mdc!.isValid(nameLock), 'the name lock stayed');
    const theirs = await other.getattr(d);
    const s = await stat(path('shared'), { bigint: true });
    assert.equal(s.nlink, BigInt(theirs.nlink));
    assert.equal(s.mtimeNs, BigInt(theirs.mtime.sec) * 1_000_000_000n + BigInt(theirs.mtime.nsec), 'the mount shows the new mtime at once');
    assert.equal(await shOk(`ls ${path('shared')} | tr '\\n' ' '`), 'a b');
  });

  test('another client\'s chmod keeps the mount\'s names; its rename drops the moved name at once', { timeout: 60_000 }, async () => {
    await shOk(`mkdir ${path('p')} && : > ${path('p', 'f')} && stat ${path('p', 'f')} > /dev/null`);
    const d = await fidOf(m, 'p');
    const f = await fidOf(m, 'p', 'f');
    const [dirName] = withBits(m, d, NAME);
    const [fileName] = withBits(m, f, NAME);
    assert.ok(dirName && fileName);

    await other.setattr(d, { mode: 0o700 });
    assert.ok(m.dlm.mdc!.isValid(dirName), 'a chmod changes attributes, not names');
    assert.equal(await shOk(`stat -c %a ${path('p')}`), '700', 'the mount shows the new mode at once');

    const ino = (await stat(path('p', 'f'))).ino;
    await other.rename(d, 'f', d, 'g');
    assert.ok(!m.dlm.mdc!.isValid(fileName), 'the rename revoked the moved file\'s name lock');
    await assert.rejects(stat(path('p', 'f')), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    assert.equal((await stat(path('p', 'g'))).ino, ino);
    assert.ok(m.dlm.mdc!.isValid(dirName), 'the directory\'s own name was never in question');
  });
});
