/** MdAttrCache on its own: what goes in, what comes out, and what bounds it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MdAttrCache } from '../src/client/md-attr-cache.js';
import type { Inode } from '../src/common/inode.js';

const t = { sec: 1, nsec: 0 };
function inode(oid: number, mode = 0o100644): Inode {
  return { fid: { seq: 0x200000400, oid, ver: 0 }, type: 'reg', mode, uid: 0, gid: 0, nlink: 1, size: 0, rdev: 0, atime: t, mtime: t, ctime: t, btime: t };
}

test('only a reply read under a still-valid lock is kept', () => {
  const c = new MdAttrCache();
  c.putInode('r1', inode(1), false);
  assert.equal(c.inode('r1'), undefined);
  c.putInode('r1', inode(1), true);
  assert.equal(c.inode('r1')?.fid.oid, 1);
  c.putXattr('r1', 'user.a', Buffer.from('x'), false);
  assert.equal(c.xattr('r1', 'user.a'), undefined);
});

test('an absent xattr is remembered as null, a value as a copy', () => {
  const c = new MdAttrCache();
  c.putXattr('r', 'security.capability', null, true);
  assert.equal(c.xattr('r', 'security.capability'), null);
  const v = Buffer.from('abc');
  c.putXattr('r', 'user.v', v, true);
  v[0] = 0x7a;
  const got = c.xattr('r', 'user.v')!;
  assert.equal(got.toString(), 'abc', 'the cache copied what it was given');
  got[1] = 0x7a;
  assert.equal(c.xattr('r', 'user.v')!.toString(), 'abc', 'and gives copies');
  assert.equal(c.xattr('r', 'user.other'), undefined);
});

test('drop forgets the inode and its xattrs together; returned inodes are copies', () => {
  const c = new MdAttrCache();
  c.putInode('r', inode(2), true);
  c.putXattr('r', 'user.a', null, true);
  const got = c.inode('r')!;
  got.mode = 0;
  assert.equal(c.inode('r')!.mode, 0o100644);
  c.drop('r');
  assert.equal(c.inode('r'), undefined);
  assert.equal(c.xattr('r', 'user.a'), undefined);
  assert.equal(c.size, 0);
});

test('bounded: the least recently used inode goes first', () => {
  const c = new MdAttrCache(3);
  for (const r of ['a', 'b', 'c']) c.putInode(r, inode(r.charCodeAt(0)), true);
  c.inode('a');
  c.putInode('d', inode(4), true);
  assert.equal(c.size, 3);
  assert.equal(c.inode('b'), undefined, 'b was the least recently used');
  assert.ok(c.inode('a') && c.inode('c') && c.inode('d'));
});
