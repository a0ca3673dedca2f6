/**
 * What the fuse-native fallback hands to libfuse 2: stat and statvfs words,
 * inode numbers folded to 32 bits, errnos, and the mount options that keep
 * the kernel from caching what fuse-native cannot invalidate.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno, err } from '../src/common/errno.js';
import { errnoOf, foldIno, packStat, packStatfs } from '../src/fuse/fuse-native-ops.js';
import { fallbackMountOptions } from '../src/fuse/fuse-native-session.js';
import type { FuseAttr, SessionOptions } from '../src/fuse/lowlevel.js';

const opts: SessionOptions = {
  fsname: '127.0.0.1@tcp:/testfs',
  subtype: 'stria',
  allowOther: false,
  defaultPermissions: false,
  maxWrite: 1 << 20,
  maxReadahead: 1 << 20,
  writebackCache: false,
  autoUnmount: false,
  requestTimeoutMs: 60_000,
};

describe('fuse-native fallback: translation to libfuse 2', () => {
  it('packs struct stat words, with times in milliseconds', () => {
    const a: FuseAttr = {
      ino: 42n,
      mode: 0o100644,
      nlink: 3,
      uid: 1000,
      gid: 100,
      rdev: 0,
      size: 5 * 2 ** 32 + 7,
      blocks: 9,
      blksize: 4096,
      atime: { sec: 1_700_000_000, nsec: 123_456_789 },
      mtime: { sec: 1, nsec: 999_999_999 },
      ctime: { sec: -5, nsec: 0 },
    };
    const w = packStat(a);
    assert.equal(w.length, 18);
    assert.deepEqual([w[0], w[1], w[2]], [0o100644, 1000, 100]);
    assert.deepEqual([w[3], w[4]], [7, 5], 'size low, high');
    assert.deepEqual([w[6], w[7], w[9], w[10]], [3, 42, 4096, 9]);
    assert.equal(w[12]! + w[13]! * 2 ** 32, 1_700_000_000_123, 'atime ms (nanoseconds dropped)');
    assert.equal(w[14]! + w[15]! * 2 ** 32, 1999);
    assert.equal(w[16]! + w[17]! * 2 ** 32, 0, 'times before 1970 become 1970');
  });

  it('folds 64-bit node ids into 32-bit st_ino, never 0', () => {
    assert.equal(foldIno(1n), 1);
    assert.equal(foldIno(0xffffffffn), 0xffffffff);
    assert.equal(foldIno(0x1_0000_0002n), 3);
    assert.equal(foldIno(0x5_0000_0005n), 1);
  });

  it('gives statvfs block counts that overflow 32 bits in bigger fragments', () => {
    const s = packStatfs({ bsize: 4096, frsize: 4096, blocks: 2 ** 34, bfree: 2 ** 33, bavail: 2 ** 32, files: 2 ** 40, ffree: 10, favail: 10, namemax: 255 });
    assert.ok(s.blocks! <= 0xffffffff);
    assert.equal(s.frsize! * s.blocks!, 4096 * 2 ** 34, 'total size kept');
    assert.equal(s.frsize! * s.bfree!, 4096 * 2 ** 33);
    assert.equal(s.files, 0xffffffff);
    assert.equal(s.namemax, 255);
  });

  it('replies with the errno a StriaError carries, EIO for anything else', () => {
    assert.equal(errnoOf(err('ENOENT', 'x')), Errno.ENOENT);
    assert.equal(errnoOf(new Error('boom')), Errno.EIO);
    assert.equal(errnoOf({ errno: -2 }), Errno.EIO);
    assert.equal(errnoOf(undefined), Errno.EIO);
  });

  it('mounts with no kernel caching of names, attributes or data', () => {
    const o = fallbackMountOptions(opts);
    for (const want of ['attr_timeout=0', 'entry_timeout=0', 'negative_timeout=0', 'direct_io', 'use_ino', 'big_writes']) {
      assert.ok(o.includes(want), want);
    }
    assert.ok(o.includes('fsname=127.0.0.1@tcp:/testfs'));
    assert.ok(o.includes('subtype=stria'));
    assert.ok(o.includes('max_write=131072'), 'libfuse 2 takes at most 128 KiB per write');
    assert.ok(!o.includes('allow_other') && !o.includes('default_permissions') && !o.includes('auto_unmount'));
  });

  it('maps the session options, and allow_other always brings default_permissions', () => {
    const o = fallbackMountOptions({ ...opts, allowOther: true, autoUnmount: true, writebackCache: true, extraOptions: ['ro'] });
    assert.ok(o.includes('allow_other'));
    assert.ok(o.includes('default_permissions'), 'the filesystem cannot check callers itself');
    assert.ok(o.includes('auto_unmount'));
    assert.ok(!o.includes('direct_io'), 'writebackCache lets the kernel cache pages');
    assert.equal(o[o.length - 1], 'ro');
    assert.ok(fallbackMountOptions({ ...opts, defaultPermissions: true }).includes('default_permissions'));
  });

  it('escapes commas in fsname', () => {
    assert.ok(fallbackMountOptions({ ...opts, fsname: 'a,b\\c' }).includes('fsname=a\\,b\\\\c'));
  });
});
