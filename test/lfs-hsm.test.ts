/**
 * lfs hsm_* (reference §7.4) as the lfs binary runs them on paths of a real mount: archive,
 * release, restore, state, action, set/clear, remove, cancel, with Lustre's output and exit
 * statuses; non-root users may only restore; a released file read through the mount comes
 * back with identical bytes and shows one block meanwhile. The copytool is an agent of the
 * test's own (a StriaClient keeping archive copies in memory).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster, STRIA_BIN } from './helpers/cluster.js';
import { TestMount, sh, type ToolResult } from './helpers/mount.js';
import { pseudoRandomBuffer } from './helpers/data.js';
import { fidKey, fidToString, type Fid } from '../src/common/fid.js';
import type { StriaClient } from '../src/client/client.js';
import { HS } from '../src/hsm/flags.js';
import type { HsmActionItem } from '../src/hsm/protocol.js';
import { resolvePath } from '../src/client/fs-spec.js';

const LFS_BIN = join(STRIA_BIN, '..', 'lfs.js');
const USER = 1000;
const EIO = 5;

/** A copytool for archive 1 that keeps copies in memory; actions wait for `gate` when one is set. */
class MemoryAgent {
  readonly copies = new Map<string, Buffer>();
  readonly pushed: HsmActionItem[] = [];
  readonly errors: unknown[] = [];
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  constructor(readonly c: StriaClient) {}

  async start(): Promise<void> {
    this.c.onHsmActions((hal) => {
      for (const item of hal.items) {
        this.pushed.push(item);
        void this.handle(item).catch((e: unknown) => this.errors.push(e));
      }
    });
    await this.c.hsm.register([1]);
  }

  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  let(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  count(action: HsmActionItem['action'], fid: Fid): number {
    return this.pushed.filter((i) => i.action === action && fidKey(i.fid) === fidKey(fid)).length;
  }

  private async handle(item: HsmActionItem): Promise<void> {
    const { cookie, fid } = item;
    await this.c.hsm.progress({ cookie, fid, phase: 'begin' });
    await this.gate;
    if (item.action === 'ARCHIVE') {
      const dataVersion = await this.c.dataVersion(fid);
      const attr = await this.c.getattr(fid);
      const f = await this.c.open(fid);
      const data = await this.c.read(f, 0, attr.size);
      await this.c.close(f);
      this.copies.set(fidKey(fid), data);
      const checksum = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      await this.c.hsm.progress({ cookie, fid, phase: 'end', errval: 0, bytes: data.length, archived: { dataVersion, size: data.length, checksum } });
    } else if (item.action === 'RESTORE') {
      const copy = this.copies.get(fidKey(fid));
      const r = item.restore;
      if (!copy || !r) {
        await this.c.hsm.progress({ cookie, fid, phase: 'end', errval: EIO });
        return;
      }
      await this.c.writeObjects(fid, r.layout, 0, copy);
      await this.c.finishObjects(fid, r.layout, { size: r.size, atime: r.atime, mtime: r.mtime });
      // the restored objects' version becomes the archived one: the file may be released again
      const dataVersion = await this.c.dataVersionOf({ ...(await this.c.mdc.getattr(fid)), layout: r.layout });
      const checksum = `sha256:${createHash('sha256').update(copy).digest('hex')}`;
      await this.c.hsm.progress({ cookie, fid, phase: 'end', errval: 0, bytes: copy.length, archived: { dataVersion, size: copy.length, checksum } });
    } else {
      if (item.action === 'REMOVE') this.copies.delete(fidKey(fid));
      await this.c.hsm.progress({ cookie, fid, phase: 'end', errval: 0 });
    }
  }
}

let cluster: TestCluster;
let m: TestMount;
let c: StriaClient;
let agentClient: StriaClient;
let agent: MemoryAgent;
let tmp: string;
let seed = 7;

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  m = await TestMount.start(cluster);
  await ok(`chmod 1777 ${m.mountpoint}`);
  c = await cluster.mount();
  agentClient = await cluster.mount();
  agent = new MemoryAgent(agentClient);
  await agent.start();
  tmp = mkdtempSync(join(tmpdir(), 'lfs-hsm-'));
  // the unprivileged user copies its source files from here
  chmodSync(tmp, 0o755);
});

after(async () => {
  await agentClient?.unmount();
  await c?.unmount();
  await m?.stop();
  await cluster?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function ok(cmd: string, opts: { uid?: number } = {}): Promise<string> {
  const r = await sh(cmd, opts);
  assert.equal(r.code, 0, `${cmd}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

/** The lfs binary, as root or as `uid`. */
function lfs(args: string[], opts: { uid?: number } = {}): Promise<ToolResult> {
  return sh(`${quote(process.execPath)} ${quote(LFS_BIN)} ${args.map(quote).join(' ')}`, { ...opts, timeoutMs: 60_000 });
}

async function lfsOk(args: string[], opts: { uid?: number } = {}): Promise<string> {
  const r = await lfs(args, opts);
  assert.equal(r.code, 0, `lfs ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function fidOf(name: string): Promise<Fid> {
  return (await resolvePath(c, name.split('/'))).attr.fid;
}

async function idle(fid: Fid): Promise<boolean> {
  return (await c.hsm.action(fid)).action === 'NOOP';
}

async function flagsOf(fid: Fid): Promise<number> {
  return (await c.hsm.state(fid)).flags;
}

/** A file written through the mount (as `uid`), with its bytes. */
async function mountFile(name: string, size: number, uid?: number): Promise<{ path: string; fid: Fid; data: Buffer }> {
  const data = pseudoRandomBuffer(size, seed++);
  const local = join(tmp, `${name.replace(/\//g, '_')}.src`);
  writeFileSync(local, data, { mode: 0o644 });
  await ok(`cp ${local} ${m.path(name)}`, uid === undefined ? {} : { uid });
  return { path: m.path(name), fid: await fidOf(name), data };
}

async function archived(path: string, fid: Fid): Promise<void> {
  await lfsOk(['hsm_archive', path]);
  await waitFor(`archive of ${path}`, async () => (await idle(fid)) && ((await flagsOf(fid)) & HS.ARCHIVED) !== 0);
}

test('archive, action while it runs, state; release keeps stat; cat restores identical bytes', async () => {
  const { path, fid, data } = await mountFile('cold', 3 * 65536 + 321);
  const before = (await ok(`stat -c '%s %Y' ${path}`)).trim();
  agent.hold();
  try {
    await lfsOk(['hsm_archive', '--archive', '1', path]);
    await waitFor('the archive to reach the agent', () => agent.count('ARCHIVE', fid) === 1);
    assert.equal(await lfsOk(['hsm_action', path]), `${path}: ARCHIVE RUNNING (0 bytes moved)\n`);
  } finally {
    agent.let();
  }
  await waitFor('the archive', () => idle(fid));
  assert.equal(await lfsOk(['hsm_state', path]), `${path}: (0x00000009) exists archived, archive_id:1\n`);
  assert.equal(await lfsOk(['hsm_action', path]), `${path}: NOOP\n`);

  assert.equal(await lfsOk(['hsm_release', path]), '');
  assert.equal(await lfsOk(['hsm_state', path]), `${path}: (0x0000000d) released exists archived, archive_id:1\n`);
  assert.equal(await lfsOk(['hsm_state', cluster.spec('cold')]), `${cluster.spec('cold')}: (0x0000000d) released exists archived, archive_id:1\n`, 'a filesystem spec names it too');
  assert.equal((await ok(`stat -c '%s %Y' ${path}`)).trim(), before, 'size and mtime do not change');
  assert.equal((await ok(`stat -c %b ${path}`)).trim(), '1', 'one block, so tar does not take it for a hole');
  assert.equal(agent.count('RESTORE', fid), 0, 'stat does not restore');

  const sum = (await ok(`sha256sum < ${path}`)).split(' ')[0];
  assert.equal(sum, createHash('sha256').update(data).digest('hex'), 'cat returns the archived bytes');
  assert.equal(agent.count('RESTORE', fid), 1);
  assert.equal(await lfsOk(['hsm_state', path]), `${path}: (0x00000009) exists archived, archive_id:1\n`);
  assert.deepEqual(agent.errors, []);
});

test('hsm_restore brings a released file back; truncate through the mount restores first', async () => {
  const { path, fid, data } = await mountFile('warm', 2 * 65536 + 5);
  await archived(path, fid);
  await lfsOk(['hsm_release', path]);
  agent.hold();
  try {
    assert.equal(await lfsOk(['hsm_restore', path]), '');
    await waitFor('the restore to reach the agent', () => agent.count('RESTORE', fid) === 1);
    assert.equal(await lfsOk(['hsm_action', path]), `${path}: RESTORE RUNNING (0 bytes moved)\n`);
  } finally {
    agent.let();
  }
  await waitFor('the restore', async () => ((await flagsOf(fid)) & HS.RELEASED) === 0);
  assert.equal(await lfsOk(['hsm_state', path]), `${path}: (0x00000009) exists archived, archive_id:1\n`);

  await lfsOk(['hsm_release', path]);
  await ok(`truncate -s 1000 ${path}`);
  assert.equal(agent.count('RESTORE', fid), 2);
  const head = (await ok(`sha256sum < ${path}`)).split(' ')[0];
  assert.equal(head, createHash('sha256').update(data.subarray(0, 1000)).digest('hex'));
  assert.equal(await lfsOk(['hsm_state', path]), `${path}: (0x0000000b) exists dirty archived, archive_id:1\n`, 'a truncate makes the copy stale');
});

test('hsm_set and hsm_clear change flags; a never_release file is not released', async () => {
  const { path, fid } = await mountFile('pinned', 4096);
  await archived(path, fid);
  await lfsOk(['hsm_set', '--norelease', path]);
  assert.equal(await lfsOk(['hsm_state', path]), `${path}: (0x00000019) exists archived never_release, archive_id:1\n`);
  const r = await lfs(['hsm_release', path]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`^lfs hsm_release: Cannot send HSM request \\(use of ${path}\\): .+\\n$`));
  assert.equal(await flagsOf(fid), HS.EXISTS | HS.ARCHIVED | HS.NORELEASE, 'not released');
  await lfsOk(['hsm_clear', '--norelease', path]);
  await lfsOk(['hsm_set', '--dirty', '--noarchive', path]);
  assert.equal(await lfsOk(['hsm_state', path]), `${path}: (0x0000002b) exists dirty archived never_archive, archive_id:1\n`);
  await lfsOk(['hsm_clear', '-d', '-a', path]);
  assert.equal(await lfsOk(['hsm_state', path]), `${path}: (0x00000009) exists archived, archive_id:1\n`);
  const usage = await lfs(['hsm_set', path]);
  assert.equal(usage.code, 4, 'no flag: usage');
});

test('a non-root user cannot archive or release, but may restore and look', async () => {
  await ok(`mkdir -p ${m.path('users')} && chmod 777 ${m.path('users')}`);
  const { path, fid, data } = await mountFile('users/mine', 70_000, USER);
  const refused = await lfs(['hsm_archive', path], { uid: USER });
  assert.equal(refused.code, 1, 'EPERM is the exit status');
  assert.equal(refused.stderr, `lfs hsm_archive: Cannot send HSM request (use of ${path}): Operation not permitted\n`);
  assert.equal(agent.count('ARCHIVE', fid), 0);
  await archived(path, fid);
  const noRelease = await lfs(['hsm_release', path], { uid: USER });
  assert.equal(noRelease.code, 1);
  assert.equal(noRelease.stderr, `lfs hsm_release: Cannot send HSM request (use of ${path}): Operation not permitted\n`);
  assert.equal(await flagsOf(fid), HS.EXISTS | HS.ARCHIVED);
  await lfsOk(['hsm_release', path]);
  assert.equal(await lfsOk(['hsm_state', path], { uid: USER }), `${path}: (0x0000000d) released exists archived, archive_id:1\n`);
  await lfsOk(['hsm_restore', path], { uid: USER });
  await waitFor('the restore', async () => ((await flagsOf(fid)) & HS.RELEASED) === 0);
  const sum = (await ok(`sha256sum < ${path}`, { uid: USER })).split(' ')[0];
  assert.equal(sum, createHash('sha256').update(data).digest('hex'));
});

test('hsm_remove: refused for a released file, by FID under --mntpath otherwise; --filelist names files', async () => {
  const a = await mountFile('rm-a', 5000);
  const b = await mountFile('rm-b', 6000);
  const list = join(tmp, 'list');
  writeFileSync(list, `${a.path}\n${b.path}\n`);
  await lfsOk(['hsm_archive', '--filelist', list]);
  await waitFor('both archives', async () => (await idle(a.fid)) && (await idle(b.fid)) && ((await flagsOf(a.fid)) & (await flagsOf(b.fid)) & HS.ARCHIVED) !== 0);
  assert.equal(agent.count('ARCHIVE', a.fid) + agent.count('ARCHIVE', b.fid), 2);

  await lfsOk(['hsm_release', a.path]);
  const busy = await lfs(['hsm_remove', a.path]);
  assert.notEqual(busy.code, 0);
  assert.match(busy.stderr, new RegExp(`^lfs hsm_remove: Cannot send HSM request \\(use of ${a.path}\\): .+\\n$`));
  assert.equal(agent.count('REMOVE', a.fid), 0, 'the archive holds the only copy');

  await lfsOk(['hsm_remove', '--mntpath', m.mountpoint, fidToString(b.fid)]);
  await waitFor('the remove', () => idle(b.fid));
  assert.equal(agent.count('REMOVE', b.fid), 1);
  assert.equal(agent.copies.has(fidKey(b.fid)), false);

  const badFid = await lfs(['hsm_remove', '--mntpath', m.mountpoint, 'nofid']);
  assert.equal(badFid.code, 22);
  assert.equal(badFid.stderr, "lfs hsm_remove: 'nofid' is not a valid FID\n");
  const dir = await lfs(['hsm_archive', m.path('users')]);
  assert.equal(dir.code, 4);
  assert.match(dir.stderr, /^lfs: error: ".*users" is not a regular file\nusage: hsm_archive /);
});

test('hsm_cancel of a waiting archive: the action ends and the file stays unarchived', async () => {
  const { path, fid } = await mountFile('cancelled', 4096);
  agent.hold();
  try {
    await lfsOk(['hsm_archive', path]);
    await waitFor('the archive to reach the agent', () => agent.count('ARCHIVE', fid) === 1);
    assert.equal(await lfsOk(['hsm_cancel', path]), '');
  } finally {
    agent.let();
  }
  await waitFor('the action to end', () => idle(fid));
  assert.equal((await flagsOf(fid)) & HS.ARCHIVED, 0);
  assert.equal(await lfsOk(['hsm_action', path]), `${path}: NOOP\n`);
});
