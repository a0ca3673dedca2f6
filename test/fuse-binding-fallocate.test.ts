/** Native FUSE binding: fallocate reaches the handler; without one the kernel reports EOPNOTSUPP. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Errno } from '../src/common/errno.js';
import { FUSE_ROOT_ID } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, run, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

// raw fallocate(2) through libc, so glibc cannot emulate it by writing zeros
const script = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
fd = os.open(sys.argv[1], os.O_RDWR)
for mode, off, ln in ((0, 4096, 1 << 20), (1, 0, 8 << 20)):
    rc = libc.fallocate(fd, mode, off, ln)
    print(rc, ctypes.get_errno() if rc else 'ok', os.fstat(fd).st_size)
`;

test('fallocate: mode, offset and length reach the handler', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  const ino = fs.addFile(FUSE_ROOT_ID, 'f', 'x');
  return withMount(fs, {}, async (m) => {
    const r = await run(['python3', '-c', script, m.path('f')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `0 ok ${4096 + (1 << 20)}\n0 ok ${4096 + (1 << 20)}\n`);
    assert.deepEqual(fs.fallocates, [
      { ino, mode: 0, offset: 4096, length: 1 << 20 },
      { ino, mode: 1, offset: 0, length: 8 << 20 },
    ]);
  });
});

test('without a fallocate handler the operation is not registered: EOPNOTSUPP', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  fs.addFile(FUSE_ROOT_ID, 'f', 'x');
  const ops = Object.assign(Object.create(fs) as MemFs, { fallocate: undefined });
  return withMount(ops, {}, async (m) => {
    const r = await run(['python3', '-c', script, m.path('f')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `-1 ${Errno.EOPNOTSUPP} 1\n-1 ${Errno.EOPNOTSUPP} 1\n`);
    assert.deepEqual(fs.fallocates, []);
  });
});
