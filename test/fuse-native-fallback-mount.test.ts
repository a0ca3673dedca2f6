/**
 * The fuse-native fallback serves a real mount: ordinary programs and node's
 * fs see a POSIX filesystem whose contents are the in-memory fixture's.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { S_IFMT, S_IFREG } from '../src/common/inode.js';
import { FallbackMemFs } from './helpers/fallback-memfs.js';
import { fallbackSkipReason, mountFallback, run, runFailing, type FallbackMount } from './helpers/fallback-mount.js';

const skip = fallbackSkipReason();

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** xattr syscalls through a child process: node has no xattr API, and the mount must be used from outside. */
async function py(code: string, ...args: string[]): Promise<string> {
  return (await run('python3', ['-c', code, ...args])).stdout;
}

describe('fuse-native fallback: a real mount', { skip }, () => {
  const memfs = new FallbackMemFs({ readdirPageEntries: 7 });
  let m: FallbackMount;

  before(async () => {
    m = await mountFallback(memfs);
  });

  after(async () => {
    await m?.cleanup();
  });

  it('is listed with its fsname and fuse.<subtype>, and init reached the filesystem', async () => {
    const mounts = await fs.readFile('/proc/self/mounts', 'utf8');
    const line = mounts.split('\n').find((l) => l.split(' ')[1] === m.dir);
    assert.ok(line, 'mount listed in /proc/self/mounts');
    const [source, , type] = line.split(' ');
    assert.equal(source, 'fallback-test:/memfs');
    assert.equal(type, 'fuse.striatest');
    assert.equal(memfs.inited, true);
  });

  it('writes and reads back file contents (node fs and cp/cat)', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 123);
    await fs.writeFile(m.p('blob'), data);
    const back = await fs.readFile(m.p('blob'));
    assert.equal(back.length, data.length);
    assert.equal(sha(back), sha(data));
    await run('cp', [m.p('blob'), m.p('blob2')]);
    const out = await run('sha256sum', [m.p('blob2')]);
    assert.equal(out.stdout.split(' ')[0], sha(data));
    assert.equal(memfs.nodeAt('/blob2')!.size, data.length);
  });

  it('writes at offsets and reads ranges', async () => {
    const fh = await fs.open(m.p('ranges'), 'w+');
    try {
      await fh.write(Buffer.from('world'), 0, 5, 6);
      await fh.write(Buffer.from('hello '), 0, 6, 0);
      const buf = Buffer.alloc(5);
      const { bytesRead } = await fh.read(buf, 0, 5, 6);
      assert.equal(bytesRead, 5);
      assert.equal(buf.toString(), 'world');
    } finally {
      await fh.close();
    }
    assert.equal(await fs.readFile(m.p('ranges'), 'utf8'), 'hello world');
  });

  it('stats files with the filesystem attributes', async () => {
    await fs.writeFile(m.p('st'), 'x'.repeat(1000));
    const st = await fs.stat(m.p('st'));
    const node = memfs.nodeAt('/st')!;
    assert.equal(st.size, 1000);
    assert.equal(st.mode & S_IFMT, S_IFREG);
    assert.equal(st.ino, Number(node.ino));
    assert.equal(st.nlink, 1);
    assert.equal(st.uid, process.getuid!());
    const out = await run('stat', ['-c', '%s %h %F', m.p('st')]);
    assert.equal(out.stdout.trim(), '1000 1 regular file');
  });

  it('makes, lists (across readdir pages) and removes directories', async () => {
    await fs.mkdir(m.p('d/e/f'), { recursive: true });
    const names = Array.from({ length: 20 }, (_, i) => `n${i}`);
    for (const n of names) await fs.writeFile(m.p(`d/e/${n}`), n);
    const listed = await fs.readdir(m.p('d/e'));
    assert.deepEqual([...listed].sort(), [...names, 'f'].sort());
    const ls = await run('ls', ['-a', m.p('d/e')]);
    assert.ok(ls.stdout.split('\n').includes('.'));
    assert.ok(ls.stdout.split('\n').includes('..'));
    const err = await runFailing('rmdir', [m.p('d/e')]);
    assert.match(err, /not empty/i);
    await run('rm', ['-r', m.p('d')]);
    await assert.rejects(fs.stat(m.p('d')), { code: 'ENOENT' });
    assert.equal(memfs.nodeAt('/d'), undefined);
  });

  it('renames files and directories, and the old names are gone', async () => {
    await fs.mkdir(m.p('r1/sub'), { recursive: true });
    await fs.writeFile(m.p('r1/sub/file'), 'payload');
    await fs.stat(m.p('r1/sub/file'));
    await fs.rename(m.p('r1'), m.p('r2'));
    await assert.rejects(fs.stat(m.p('r1/sub/file')), { code: 'ENOENT' });
    assert.equal(await fs.readFile(m.p('r2/sub/file'), 'utf8'), 'payload');
    await fs.writeFile(m.p('over'), 'old');
    await run('mv', [m.p('r2/sub/file'), m.p('over')]);
    assert.equal(await fs.readFile(m.p('over'), 'utf8'), 'payload');
    await assert.rejects(fs.stat(m.p('r2/sub/file')), { code: 'ENOENT' });
  });

  it('unlinks files, and an open file stays readable after unlink', async () => {
    await fs.writeFile(m.p('gone'), 'still here');
    await fs.unlink(m.p('gone'));
    await assert.rejects(fs.stat(m.p('gone')), { code: 'ENOENT' });
    await fs.writeFile(m.p('open-unlinked'), 'kept while open');
    const fh = await fs.open(m.p('open-unlinked'), 'r');
    try {
      await fs.unlink(m.p('open-unlinked'));
      await assert.rejects(fs.stat(m.p('open-unlinked')), { code: 'ENOENT' });
      const buf = Buffer.alloc(64);
      const { bytesRead } = await fh.read(buf, 0, 64, 0);
      assert.equal(buf.subarray(0, bytesRead).toString(), 'kept while open');
    } finally {
      await fh.close();
    }
  });

  it('makes symlinks and hard links', async () => {
    await fs.writeFile(m.p('target'), 'linked');
    await run('ln', ['-s', 'target', m.p('sym')]);
    assert.equal(await fs.readlink(m.p('sym')), 'target');
    assert.equal(await fs.readFile(m.p('sym'), 'utf8'), 'linked');
    assert.ok((await fs.lstat(m.p('sym'))).isSymbolicLink());
    await run('ln', [m.p('target'), m.p('hard')]);
    const a = await fs.stat(m.p('target'));
    const b = await fs.stat(m.p('hard'));
    assert.equal(a.ino, b.ino);
    assert.equal(b.nlink, 2);
    await fs.unlink(m.p('target'));
    assert.equal((await fs.stat(m.p('hard'))).nlink, 1);
    assert.equal(await fs.readFile(m.p('hard'), 'utf8'), 'linked');
  });

  it('changes mode and owner', async () => {
    await fs.writeFile(m.p('perm'), '');
    await run('chmod', ['0640', m.p('perm')]);
    assert.equal((await fs.stat(m.p('perm'))).mode & 0o7777, 0o640);
    assert.equal(memfs.nodeAt('/perm')!.mode & 0o7777, 0o640);
    await run('chown', ['1234:4321', m.p('perm')]);
    const st = await fs.stat(m.p('perm'));
    assert.equal(st.uid, 1234);
    assert.equal(st.gid, 4321);
    await run('chown', [':777', m.p('perm')]);
    const st2 = await fs.stat(m.p('perm'));
    assert.equal(st2.uid, 1234, 'uid left alone when only the group changes');
    assert.equal(st2.gid, 777);
  });

  it('truncates up and down', async () => {
    await fs.writeFile(m.p('trunc'), 'abcdefgh');
    await run('truncate', ['-s', '3', m.p('trunc')]);
    assert.equal(await fs.readFile(m.p('trunc'), 'utf8'), 'abc');
    await fs.truncate(m.p('trunc'), 6);
    assert.deepEqual(await fs.readFile(m.p('trunc')), Buffer.from([0x61, 0x62, 0x63, 0, 0, 0]));
    const fh = await fs.open(m.p('trunc'), 'r+');
    try {
      await fh.truncate(1);
    } finally {
      await fh.close();
    }
    assert.equal(await fs.readFile(m.p('trunc'), 'utf8'), 'a');
  });

  it('sets atime and mtime separately (to the millisecond)', async () => {
    await fs.writeFile(m.p('times'), '');
    await fs.utimes(m.p('times'), 1_000_000.25, 2_000_000.5);
    const st = await fs.stat(m.p('times'));
    assert.equal(st.atimeMs, 1_000_000_250);
    assert.equal(st.mtimeMs, 2_000_000_500);
    const node = memfs.nodeAt('/times')!;
    assert.deepEqual(node.mtime, { sec: 2_000_000, nsec: 500_000_000 });
    assert.deepEqual(node.atime, { sec: 1_000_000, nsec: 250_000_000 });
  });

  it('sets, gets, lists and removes extended attributes', async () => {
    await fs.writeFile(m.p('xa'), '');
    const f = m.p('xa');
    await py('import os,sys; os.setxattr(sys.argv[1], "user.color", b"blue" * 100)', f);
    assert.equal((await py('import os,sys; print(os.getxattr(sys.argv[1], "user.color").decode())', f)).trim(), 'blue'.repeat(100));
    await py('import os,sys; os.setxattr(sys.argv[1], "user.shape", b"round")', f);
    const names = (await py('import os,sys; print(",".join(sorted(os.listxattr(sys.argv[1]))))', f)).trim();
    assert.equal(names, 'user.color,user.shape');
    // a buffer too small for the value is ERANGE, not an overrun
    const small = await py(
      'import ctypes,sys,errno\nlibc=ctypes.CDLL(None,use_errno=True)\nb=ctypes.create_string_buffer(8)\nr=libc.getxattr(sys.argv[1].encode(),b"user.color",b,8)\nprint(r, errno.errorcode.get(ctypes.get_errno()))',
      f,
    );
    assert.equal(small.trim(), '-1 ERANGE');
    const create = await py(
      'import os,sys\ntry:\n  os.setxattr(sys.argv[1], "user.shape", b"x", os.XATTR_CREATE)\n  print("ok")\nexcept OSError as e:\n  print(e.errno)',
      f,
    );
    assert.equal(Number(create.trim()), 17 /* EEXIST */);
    await py('import os,sys; os.removexattr(sys.argv[1], "user.shape")', f);
    const missing = await py(
      'import os,sys\ntry:\n  os.getxattr(sys.argv[1], "user.shape")\n  print("ok")\nexcept OSError as e:\n  print(e.errno)',
      f,
    );
    assert.equal(Number(missing.trim()), 61 /* ENODATA */);
    assert.deepEqual([...memfs.nodeAt('/xa')!.xattrs.keys()], ['user.color']);
  });

  it('reports statfs figures', async () => {
    const out = await run('stat', ['-f', '-c', '%S %l', m.dir]);
    assert.equal(out.stdout.trim(), '4096 255');
  });

  it('fails with the errno the filesystem gave', async () => {
    await assert.rejects(fs.readFile(m.p('no/such/file')), { code: 'ENOENT' });
    await fs.writeFile(m.p('plain'), '');
    await assert.rejects(fs.mkdir(m.p('plain')), { code: 'EEXIST' });
    await assert.rejects(fs.readdir(m.p('plain')), { code: 'ENOTDIR' });
  });
});

describe('fuse-native fallback: kernel page cache', { skip }, () => {
  const mmapWrite =
    'import mmap,sys\nf=open(sys.argv[1],"r+b")\ntry:\n  m=mmap.mmap(f.fileno(),0)\n  m[0:5]=b"HELLO"\n  m.flush()\n  m.close()\n  print("ok")\nexcept OSError as e:\n  print(e.errno)';

  it('without writebackCache, data is never cached by the kernel, so shared mmap is refused (ENODEV)', async () => {
    const m = await mountFallback(new FallbackMemFs());
    try {
      await fs.writeFile(m.p('f'), 'hello world');
      assert.equal(Number((await py(mmapWrite, m.p('f'))).trim()), 19 /* ENODEV */);
    } finally {
      await m.cleanup();
    }
  });

  it('with writebackCache, the kernel caches pages and shared mmap writes reach the filesystem', async () => {
    const memfs = new FallbackMemFs();
    const m = await mountFallback(memfs, { writebackCache: true });
    try {
      await fs.writeFile(m.p('f'), 'hello world');
      assert.equal((await py(mmapWrite, m.p('f'))).trim(), 'ok');
      assert.equal(memfs.nodeAt('/f')!.data.subarray(0, 11).toString(), 'HELLO world');
    } finally {
      await m.cleanup();
    }
  });
});

describe('fuse-native fallback: invalidations from the filesystem', { skip }, () => {
  const ctx = { uid: 0, gid: 0, pid: 0, umask: 0, interrupted: false };

  it('notifyInvalEntry drops a name the filesystem let the adapter cache', async () => {
    const memfs = new FallbackMemFs({ entryTimeout: 3600, attrTimeout: 3600 });
    const m = await mountFallback(memfs);
    try {
      await fs.mkdir(m.p('dir'));
      await fs.writeFile(m.p('dir/name'), 'v1');
      await fs.stat(m.p('dir/name'));
      const dir = memfs.nodeAt('/dir')!.ino;
      // another client renames it away: this mount does not see it until told
      await memfs.rename(ctx, dir, 'name', dir, 'other', 0);
      assert.equal((await fs.stat(m.p('dir/name'))).size, 2, 'served from the cache the filesystem allowed');
      m.session.notifyInvalEntry(dir, 'name');
      await assert.rejects(fs.stat(m.p('dir/name')), { code: 'ENOENT' });
      assert.equal(await fs.readFile(m.p('dir/other'), 'utf8'), 'v1');
    } finally {
      await m.cleanup();
    }
  });

  it('notifyInvalInode drops cached attributes', async () => {
    const memfs = new FallbackMemFs({ entryTimeout: 3600, attrTimeout: 3600 });
    const m = await mountFallback(memfs);
    try {
      await fs.writeFile(m.p('grow'), 'abc');
      assert.equal((await fs.stat(m.p('grow'))).size, 3);
      const node = memfs.nodeAt('/grow')!;
      const fh = await memfs.open(ctx, node.ino, 2);
      await memfs.write(ctx, node.ino, Buffer.from('defg'), 3);
      await memfs.release(ctx, node.ino, fh.fh, 2);
      assert.equal((await fs.stat(m.p('grow'))).size, 3, 'cached attributes');
      m.session.notifyInvalInode(node.ino, -1, 0);
      assert.equal((await fs.stat(m.p('grow'))).size, 7);
    } finally {
      await m.cleanup();
    }
  });
});
