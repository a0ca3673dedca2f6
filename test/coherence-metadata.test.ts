/**
 * Namespace and attribute changes made through mount A are what mount B's
 * next lookup, stat and readdir return, with no pause in between: B has
 * looked at each name (and so may cache it) just before A changes it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { BigIntStats } from 'node:fs';
import { mkdir, open, readdir, stat, writeFile } from 'node:fs/promises';
import { sh } from './helpers/mount.js';
import { shOk } from './helpers/shell.js';
import { mountSkip, twoMounts } from './helpers/two-mounts.js';

const TEST_TIMEOUT = 120_000;
const ALICE = 1001;
const BOB = 1002;

async function fails(cmd: string, errText: RegExp): Promise<void> {
  const r = await sh(cmd, { timeoutMs: 60_000 });
  assert.notEqual(r.code, 0, `${cmd} should fail, printed ${JSON.stringify(r.stdout)}`);
  assert.match(r.stderr, errText, `${cmd}: ${r.stderr}`);
}

async function missing(path: string, why: string): Promise<void> {
  await assert.rejects(stat(path), (e: NodeJS.ErrnoException) => e.code === 'ENOENT', why);
}

/** `ls -1A` of a directory: the names a user sees. */
async function ls(dir: string): Promise<string[]> {
  const out = await shOk(`ls -1A ${dir}`);
  return out === '' ? [] : out.split('\n').sort();
}

/** What a directory's change shows in its own attributes. */
function dirAttrs(s: BigIntStats): Record<string, string> {
  return { nlink: String(s.nlink), mtimeNs: String(s.mtimeNs), ctimeNs: String(s.ctimeNs) };
}

describe('two mounts: metadata', { skip: mountSkip }, () => {
  const mounts = twoMounts({ osts: 3 });

  /** A fresh directory made on A and already looked at (listed and stat'ed) by B. */
  async function dirSeenByBoth(name: string): Promise<void> {
    const { a, b } = mounts;
    await mkdir(a.path(name));
    assert.deepEqual(await readdir(b.path(name)), []);
    await stat(b.path(name));
  }

  test('a missing name on B: after A creates it, B\'s stat finds it at once', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await dirSeenByBoth('neg');
    await missing(b.path('neg', 'late'), 'B: not there yet');
    await writeFile(a.path('neg', 'late'), 'here now');
    const s = await stat(b.path('neg', 'late'));
    assert.ok(s.isFile());
    assert.equal(s.size, 8);
  });

  test('create on A: B\'s lookup, stat and ls see the file; the parent\'s attributes agree', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await dirSeenByBoth('create');
    await writeFile(a.path('create', 'one'), 'first');
    // The parent first: B's ls would refresh the directory's attributes as a side effect.
    const parentA = dirAttrs(await stat(a.path('create'), { bigint: true }));
    assert.deepEqual(dirAttrs(await stat(b.path('create'), { bigint: true })), parentA, 'the directory\'s nlink/mtime/ctime on B equal A\'s');
    assert.deepEqual(await ls(b.path('create')), ['one']);
    await writeFile(a.path('create', 'two'), 'second!');
    const s = await stat(b.path('create', 'two'));
    assert.equal(s.size, 7);
    assert.equal(s.ino, (await stat(a.path('create', 'two'))).ino, 'B\'s name leads to the inode A created');
    assert.deepEqual(await ls(b.path('create')), ['one', 'two']);
  });

  test('unlink on A: B\'s stat fails with ENOENT and ls no longer lists it', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await dirSeenByBoth('unlink');
    await writeFile(a.path('unlink', 'doomed'), 'x');
    await writeFile(a.path('unlink', 'kept'), 'y');
    assert.equal((await stat(b.path('unlink', 'doomed'))).size, 1);
    assert.deepEqual(await ls(b.path('unlink')), ['doomed', 'kept']);
    await shOk(`rm ${a.path('unlink', 'doomed')}`);
    await missing(b.path('unlink', 'doomed'), 'B still finds the name A unlinked');
    assert.deepEqual(await ls(b.path('unlink')), ['kept']);
    await fails(`cat ${b.path('unlink', 'doomed')}`, /No such file or directory/);
  });

  test('rename on A, over an existing name: B sees the old name gone and the new one on the renamed inode', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await dirSeenByBoth('rename');
    await writeFile(a.path('rename', 'src'), 'moving');
    await writeFile(a.path('rename', 'dst'), 'replaced');
    const srcIno = (await stat(a.path('rename', 'src'))).ino;
    assert.equal((await stat(b.path('rename', 'src'))).ino, srcIno);
    assert.equal((await stat(b.path('rename', 'dst'))).size, 8);
    await shOk(`mv ${a.path('rename', 'src')} ${a.path('rename', 'dst')}`);
    await missing(b.path('rename', 'src'), 'B still finds the old name');
    const s = await stat(b.path('rename', 'dst'));
    assert.equal(s.ino, srcIno, 'B\'s lookup of the target name leads to the renamed inode');
    assert.equal(s.size, 6);
    assert.equal(await shOk(`cat ${b.path('rename', 'dst')}`), 'moving');
    assert.deepEqual(await ls(b.path('rename')), ['dst']);
    await mkdir(a.path('rename', 'sub'));
    assert.deepEqual(await ls(b.path('rename', 'sub')), []);
    await shOk(`mv ${a.path('rename', 'dst')} ${a.path('rename', 'sub', 'moved')}`);
    await missing(b.path('rename', 'dst'), 'B still finds the name moved to another directory');
    assert.deepEqual(await ls(b.path('rename', 'sub')), ['moved']);
    assert.equal((await stat(b.path('rename', 'sub', 'moved'))).ino, srcIno);
  });

  test('chmod and chown on A: B\'s stat shows the new mode and owner', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await dirSeenByBoth('perm');
    await writeFile(a.path('perm', 'f'), 'x', { mode: 0o644 });
    assert.equal((await stat(b.path('perm', 'f'))).mode & 0o7777, 0o644);
    await shOk(`chmod 600 ${a.path('perm', 'f')}`);
    assert.equal(((await stat(b.path('perm', 'f'))).mode & 0o7777).toString(8), '600', 'mode after chmod on A');
    await shOk(`chown ${ALICE}:${BOB} ${a.path('perm', 'f')}`);
    const s = await stat(b.path('perm', 'f'));
    assert.deepEqual([s.uid, s.gid], [ALICE, BOB], 'owner after chown on A');
    await shOk(`chmod 2751 ${a.path('perm')}`);
    assert.equal(((await stat(b.path('perm'))).mode & 0o7777).toString(8), '2751', 'directory mode after chmod on A');
    assert.equal(await shOk(`stat -c '%a %u:%g' ${b.path('perm', 'f')}`), `600 ${ALICE}:${BOB}`);
  });

  test('setxattr, replace and removexattr on A: B\'s getfattr follows', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await dirSeenByBoth('xattr');
    await writeFile(a.path('xattr', 'f'), 'x');
    await fails(`getfattr --only-values -n user.color ${b.path('xattr', 'f')}`, /No such attribute/);
    await shOk(`setfattr -n user.color -v blue ${a.path('xattr', 'f')}`);
    assert.equal(await shOk(`getfattr --only-values -n user.color ${b.path('xattr', 'f')}`), 'blue');
    await shOk(`setfattr -n user.color -v green ${a.path('xattr', 'f')}`);
    assert.equal(await shOk(`getfattr --only-values -n user.color ${b.path('xattr', 'f')}`), 'green');
    assert.match(await shOk(`getfattr -d ${b.path('xattr', 'f')}`), /user\.color="green"/);
    await shOk(`setfattr -x user.color ${a.path('xattr', 'f')}`);
    await fails(`getfattr --only-values -n user.color ${b.path('xattr', 'f')}`, /No such attribute/);
  });

  test('hard link on A: B sees the new name on the same inode and nlink 2, then 1 after A removes it', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await dirSeenByBoth('link');
    await writeFile(a.path('link', 'f'), 'linked');
    assert.equal((await stat(b.path('link', 'f'))).nlink, 1);
    await missing(b.path('link', 'g'), 'no second name yet');
    await shOk(`ln ${a.path('link', 'f')} ${a.path('link', 'g')}`);
    const f = await stat(b.path('link', 'f'));
    assert.equal(f.nlink, 2, 'B\'s stat of the first name shows the new link count');
    const g = await stat(b.path('link', 'g'));
    assert.equal(g.ino, f.ino, 'both names lead to one inode on B');
    assert.equal(g.nlink, 2);
    assert.deepEqual(await ls(b.path('link')), ['f', 'g']);
    await shOk(`rm ${a.path('link', 'g')}`);
    assert.equal((await stat(b.path('link', 'f'))).nlink, 1, 'nlink back to 1 after A removed the second name');
    await missing(b.path('link', 'g'), 'the removed link');
  });

  test('mkdir and rmdir on A: B\'s stat and ls follow, and B can use the new directory', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await dirSeenByBoth('dirs');
    const parentNlink0 = (await stat(b.path('dirs'))).nlink;
    await missing(b.path('dirs', 'sub'), 'not made yet');
    await shOk(`mkdir ${a.path('dirs', 'sub')}`);
    // The parent first: B's ls would refresh the directory's attributes as a side effect.
    const parentA = dirAttrs(await stat(a.path('dirs'), { bigint: true }));
    assert.deepEqual(dirAttrs(await stat(b.path('dirs'), { bigint: true })), parentA, 'the parent\'s nlink/mtime/ctime on B equal A\'s after mkdir');
    assert.equal(Number(parentA.nlink), parentNlink0 + 1, 'a subdirectory adds one link to its parent');
    assert.ok((await stat(b.path('dirs', 'sub'))).isDirectory());
    assert.deepEqual(await ls(b.path('dirs')), ['sub']);
    await writeFile(b.path('dirs', 'sub', 'fromB'), 'b');
    assert.deepEqual(await ls(a.path('dirs', 'sub')), ['fromB']);
    await shOk(`rm ${a.path('dirs', 'sub', 'fromB')}`);
    assert.deepEqual(await ls(b.path('dirs', 'sub')), []);
    assert.ok((await stat(b.path('dirs', 'sub'))).isDirectory(), 'B has just looked at the directory');
    await shOk(`rmdir ${a.path('dirs', 'sub')}`);
    await missing(b.path('dirs', 'sub'), 'B still finds the directory A removed');
    assert.deepEqual(await ls(b.path('dirs')), []);
    assert.equal((await stat(b.path('dirs'))).nlink, parentNlink0, 'the parent\'s link count on B is back where it was');
    await fails(`touch ${b.path('dirs', 'sub', 'x')}`, /No such file or directory/);
  });

  test('through a file B holds open: chmod 600 and ln on A show in B\'s fstat', { timeout: TEST_TIMEOUT }, async () => {
    const { a, b } = mounts;
    await dirSeenByBoth('held');
    await writeFile(a.path('held', 'f'), 'open on B', { mode: 0o644 });
    const fd = await open(b.path('held', 'f'), 'r');
    try {
      const s0 = await fd.stat();
      assert.equal(s0.mode & 0o7777, 0o644);
      assert.equal(s0.nlink, 1);
      await shOk(`chmod 600 ${a.path('held', 'f')}`);
      await shOk(`ln ${a.path('held', 'f')} ${a.path('held', 'g')}`);
      const s1 = await fd.stat();
      assert.equal((s1.mode & 0o7777).toString(8), '600', 'B\'s fstat on its fd shows the mode A set');
      assert.equal(s1.nlink, 2, 'B\'s fstat on its fd shows the link A added');
      assert.equal(s1.ino, s0.ino);
    } finally {
      await fd.close();
    }
  });
});
