/** Native FUSE binding: ordinary tools work through a mount of the in-memory fixture. */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, test } from 'node:test';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, run, sh, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

const T = { timeout: 60_000 };

test('echo, cat, cp, dd, stat and ls -l see the same bytes', T, () =>
  withMount(new MemFs(), {}, async (m) => {
    const r1 = await sh(`echo hello world > ${m.path('a.txt')} && cat ${m.path('a.txt')}`);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r1.stdout, 'hello world\n');

    const r2 = await sh(`head -c 3000000 /dev/urandom > ${m.dir}/../src && cp ${m.dir}/../src ${m.path('copy')} && cmp ${m.dir}/../src ${m.path('copy')}`);
    assert.equal(r2.code, 0, r2.stderr);

    const r3 = await sh(`dd if=/dev/zero of=${m.path('zeros')} bs=64k count=16 status=none && stat -c '%s %F' ${m.path('zeros')}`);
    assert.equal(r3.code, 0, r3.stderr);
    assert.equal(r3.stdout.trim(), '1048576 regular file');

    const r4 = await run(['ls', '-l', m.dir]);
    assert.equal(r4.code, 0, r4.stderr);
    assert.match(r4.stdout, /hello|a\.txt/);
    assert.match(r4.stdout, /^-rw-r--r-- 1 root root 1048576 .* zeros$/m);
    assert.match(r4.stdout, / copy$/m);

    // node's own fs, from the libuv pool, works as well
    await writeFile(m.path('node.txt'), 'from node');
    assert.equal(await readFile(m.path('node.txt'), 'utf8'), 'from node');
  }));

test('mkdir, mv, rm, ln and ln -s change the namespace', T, () =>
  withMount(new MemFs(), {}, async (m) => {
    const r = await sh(
      [
        `cd ${m.dir}`,
        'mkdir -p d1/d2',
        'echo x > d1/d2/f',
        'mv d1/d2/f d1/g',
        'ln d1/g hard',
        'ln -s d1/g soft',
        'stat -c "%h %F" d1/g',
        'readlink soft',
        'cat soft',
        'rm hard',
        'stat -c "%h" d1/g',
        'rmdir d1/d2',
        'ls d1',
        'rm -r d1 soft',
        'ls -A',
      ].join(' && '),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '2 regular file\nd1/g\nx\n1\ng\n');
    const bad = await sh(`cd ${m.dir} && mkdir e && touch e/f && rmdir e`);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not empty/i);
  }));

test('extended attributes: set, get (size probe and ERANGE), list, remove', T, () =>
  withMount(new MemFs(), {}, async (m) => {
    await writeFile(m.path('f'), '');
    const py = [
      'import os, errno, sys',
      `p = ${JSON.stringify(m.path('f'))}`,
      "os.setxattr(p, 'user.color', b'blue')",
      "os.setxattr(p, 'user.big', b'x' * 5000)",
      "print(os.getxattr(p, 'user.color').decode())",
      "print(len(os.getxattr(p, 'user.big')))",
      "print(sorted(os.listxattr(p)))",
      "os.removexattr(p, 'user.color')",
      'try:',
      "    os.getxattr(p, 'user.color')",
      'except OSError as e:',
      '    print(errno.errorcode[e.errno])',
      // a buffer that is too small must give ERANGE: use libc directly
      'import ctypes',
      "libc = ctypes.CDLL(None, use_errno=True)",
      'buf = ctypes.create_string_buffer(10)',
      "n = libc.getxattr(p.encode(), b'user.big', buf, 10)",
      'print(n, errno.errorcode[ctypes.get_errno()])',
      "print(libc.getxattr(p.encode(), b'user.big', None, 0))",
    ].join('\n');
    const r = await run(['python3', '-c', py]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "blue\n5000\n['user.big', 'user.color']\nENODATA\n-1 ERANGE\n5000\n");
  }));

test('statfs, chmod, truncate and touch reach the filesystem', T, () =>
  withMount(new MemFs(), {}, async (m) => {
    const r = await sh(
      [
        `cd ${m.dir}`,
        'stat -f -c "%S %b %a" .',
        'echo abcdef > f',
        'chmod 600 f',
        'truncate -s 3 f',
        'stat -c "%a %s" f',
        'cat f',
      ].join(' && '),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '4096 1048576 524288\n600 3\nabc');
  }));
