/** Native FUSE binding: setattr carries nanosecond times, the FUSE_SET_ATTR_* bits and the fh. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { SetattrFlag, type SetattrIn } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, sh, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

test('touch -d, touch, chmod, chown and ftruncate reach setattr exactly', { timeout: 60_000 }, () => {
  const fs = new MemFs({ attrTimeout: 0, entryTimeout: 0 });
  const seen: Array<{ attr: SetattrIn; toSet: number; fh: number | undefined }> = [];
  const setattr = fs.setattr.bind(fs);
  fs.setattr = (ctx, ino, attr, toSet, fh) => {
    seen.push({ attr, toSet, fh });
    return setattr(ctx, ino, attr, toSet, fh);
  };
  return withMount(fs, {}, async (m) => {
    const f = m.path('f');
    let r = await sh(`touch ${f} && touch -m -d '2001-02-03 04:05:06.123456789 UTC' ${f} && stat -c '%y' ${f}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().replace(/ \+0000$/, ''), '2001-02-03 04:05:06.123456789');
    const times = seen.at(-1)!;
    assert.equal(times.toSet & (SetattrFlag.MTIME | SetattrFlag.MTIME_NOW), SetattrFlag.MTIME);
    assert.deepEqual(times.attr.mtime, { sec: 981173106, nsec: 123456789 });

    seen.length = 0;
    r = await sh(`touch ${f}`);
    assert.ok(seen.some((s) => (s.toSet & (SetattrFlag.ATIME_NOW | SetattrFlag.MTIME_NOW)) === (SetattrFlag.ATIME_NOW | SetattrFlag.MTIME_NOW)));

    seen.length = 0;
    r = await sh(`chmod 751 ${f} && chown 1000:1001 ${f} && stat -c '%a %u %g' ${f}`);
    assert.equal(r.stdout, '751 1000 1001\n');
    assert.ok(seen.some((s) => s.toSet & SetattrFlag.MODE && (s.attr.mode & 0o7777) === 0o751));
    assert.ok(seen.some((s) => (s.toSet & (SetattrFlag.UID | SetattrFlag.GID)) === (SetattrFlag.UID | SetattrFlag.GID) && s.attr.uid === 1000 && s.attr.gid === 1001));

    seen.length = 0;
    r = await sh(`echo 0123456789 > ${f} && python3 -c "import os; fd = os.open('${f}', os.O_RDWR); os.ftruncate(fd, 4)" && stat -c %s ${f}`);
    assert.equal(r.stdout, '4\n');
    const trunc = seen.find((s) => s.toSet & SetattrFlag.SIZE && s.attr.size === 4);
    assert.ok(trunc, 'ftruncate reached setattr');
    assert.equal(typeof trunc.fh, 'number', 'ftruncate carries the file handle');
  });
});
