/** Native FUSE binding: inval_inode / inval_entry notifications drop what the kernel cached. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FUSE_ROOT_ID } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, run, sh, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

test('notifyInvalInode makes changed content visible despite keep_cache', { timeout: 60_000 }, () => {
  const fs = new MemFs({ attrTimeout: 3600, entryTimeout: 3600 });
  const ino = fs.addFile(FUSE_ROOT_ID, 'f', 'old-content\n', { keepCache: true });
  return withMount(fs, {}, async (m) => {
    assert.equal((await run(['cat', m.path('f')])).stdout, 'old-content\n');
    // changed behind the kernel's back, same size: the page cache still serves the old bytes
    fs.node(ino).data = Buffer.from('new-content\n');
    assert.equal((await run(['cat', m.path('f')])).stdout, 'old-content\n');
    await m.session.notifyInvalInode(ino, 0, 0);
    assert.equal((await run(['cat', m.path('f')])).stdout, 'new-content\n');
  });
});

test('notifyInvalEntry drops a cached name', { timeout: 60_000 }, () => {
  const fs = new MemFs({ attrTimeout: 3600, entryTimeout: 3600 });
  fs.addFile(FUSE_ROOT_ID, 'a', 'x');
  return withMount(fs, {}, async (m) => {
    assert.equal((await run(['stat', '-c', '%s', m.path('a')])).stdout, '1\n');
    // renamed behind the kernel's back: the cached dentry still answers
    const dir = fs.node(FUSE_ROOT_ID).entries!;
    dir.set('b', dir.get('a')!);
    dir.delete('a');
    assert.equal((await run(['stat', '-c', '%s', m.path('a')])).code, 0);
    await m.session.notifyInvalEntry(FUSE_ROOT_ID, 'a');
    const gone = await run(['stat', m.path('a')]);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /No such file/);
    assert.equal((await run(['stat', '-c', '%s', m.path('b')])).stdout, '1\n');
  });
});

test('a notification for an inode the kernel does not hold resolves quietly', { timeout: 60_000 }, () =>
  withMount(new MemFs(), {}, async (m) => {
    await m.session.notifyInvalInode(12345n, 0, 0);
    await m.session.notifyInvalEntry(FUSE_ROOT_ID, 'nothing-here');
    assert.equal((await sh(`echo ok > ${m.path('x')} && cat ${m.path('x')}`)).stdout, 'ok\n');
  }));
