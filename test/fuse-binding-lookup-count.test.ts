/**
 * Native FUSE binding: lookup counts stay exact with readdirplus. The fixture counts a lookup
 * for every entry it returns; the session must forget the ones the kernel did not take ('.',
 * '..', entries that did not fit the buffer), so once the kernel drops its caches every
 * count is back to zero.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { after, test } from 'node:test';
import { FUSE_ROOT_ID } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, run, sh, waitFor, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

test('ls -l of a large directory, then dropped caches: every lookup is forgotten exactly', { timeout: 60_000 }, () => {
  const fs = new MemFs({ attrTimeout: 60, entryTimeout: 60 });
  const dir = fs.addDir(FUSE_ROOT_ID, 'many');
  for (let i = 0; i < 300; i++) fs.addFile(dir, `file-with-a-longish-name-${String(i).padStart(4, '0')}`, `${i}\n`);
  const sub = fs.addDir(dir, 'sub');
  fs.addFile(sub, 'inner', 'x');
  return withMount(fs, {}, async (m) => {
    const ls = await run(['ls', '-la', m.path('many')]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.equal(ls.stdout.split('\n').filter((l) => l.includes('file-with-a-longish-name-')).length, 300);
    assert.equal((await sh(`cat ${m.path('many', 'sub', 'inner')} && ls -l ${m.path('many', 'sub')} >/dev/null`)).stdout, 'x');
    assert.ok(fs.calls.filter((c) => c.op === 'readdirplus').length >= 2, 'the kernel used readdirplus over several pages');
    assert.ok(fs.outstandingLookups() > 0);

    await writeFile('/proc/sys/vm/drop_caches', '2');
    const settled = await waitFor(() => fs.outstandingLookups() === 0, 15_000);
    assert.ok(settled, `lookups still held: ${fs.outstandingLookups()}`);
    assert.deepEqual(fs.problems, []);
  });
});
