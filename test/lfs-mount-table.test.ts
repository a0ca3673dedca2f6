/** lfs finds the Stria filesystem under a path from the kernel's mount table. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountOf, parseMountinfo, pathInMount, striaMounts, unescapeMountField } from '../src/cli/mount-table.js';
import { LfsSession } from '../src/cli/lfs-session.js';

const FIXTURE = [
  '22 27 0:21 / /proc rw,relatime - proc proc rw',
  '27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '40 27 0:33 / /mnt/stria rw,nosuid,nodev,relatime shared:20 - fuse.stria 127.0.0.1:23000@tcp:/testfs rw,user_id=0,group_id=0',
  '41 27 0:34 / /mnt/with\\040space rw,nosuid,nodev,relatime - fuse.stria 10.0.0.1@tcp,10.0.1.1@tcp1:/fs2/sub rw,user_id=0,group_id=0',
  '42 40 0:35 / /mnt/stria/scratch rw,relatime shared:21 - tmpfs tmpfs rw',
  '43 27 0:33 /projects/a /srv/a rw,relatime shared:20 - fuse.stria 127.0.0.1:23000@tcp:/testfs rw',
  '44 27 0:36 / /mnt/over rw - fuse.stria 127.0.0.1@tcp:/old rw',
  '45 27 0:37 / /mnt/over rw master:3 propagate_from:1 - ext4 /dev/sdb1 rw',
  'garbage line',
  '',
].join('\n');

test('mountinfo lines parse, octal escapes included', () => {
  const m = parseMountinfo(FIXTURE);
  assert.equal(m.length, 8, 'malformed lines are skipped');
  assert.deepEqual(m[2], {
    mountId: 40, parentId: 27, root: '/', mountpoint: '/mnt/stria', fstype: 'fuse.stria', source: '127.0.0.1:23000@tcp:/testfs',
  });
  assert.equal(m[3]!.mountpoint, '/mnt/with space');
  assert.equal(m[6]!.fstype, 'fuse.stria', 'optional fields before "-" do not shift the type');
  assert.equal(m[7]!.fstype, 'ext4');
  assert.equal(unescapeMountField('a\\011b\\012c\\134d\\040e'), 'a\tb\nc\\d e');
});

test('a path belongs to the longest mountpoint containing it; the last mount at a mountpoint wins', () => {
  const m = parseMountinfo(FIXTURE);
  assert.equal(mountOf(m, '/mnt/stria/dir/f')!.mountId, 40);
  assert.equal(mountOf(m, '/mnt/stria')!.mountId, 40);
  assert.equal(mountOf(m, '/mnt/striated')!.mountId, 27, 'a name that merely starts like the mountpoint is not under it');
  assert.equal(mountOf(m, '/mnt/stria/scratch/x')!.fstype, 'tmpfs', 'a mount inside the Stria mount hides it');
  assert.equal(mountOf(m, '/mnt/over/x')!.fstype, 'ext4', 'the later mount on the same mountpoint is the visible one');
  assert.equal(mountOf(m, '/mnt/with space/d')!.mountId, 41);
  assert.deepEqual(pathInMount(mountOf(m, '/mnt/stria/dir/f')!, '/mnt/stria/dir/f'), ['dir', 'f']);
  assert.deepEqual(pathInMount(mountOf(m, '/mnt/stria')!, '/mnt/stria'), []);
  assert.deepEqual(pathInMount(mountOf(m, '/srv/a/x')!, '/srv/a/x'), ['projects', 'a', 'x'], 'a bind mount adds its root');
  assert.deepEqual(striaMounts(m).map((e) => e.mountId), [40, 41, 43], 'covered Stria mounts are not listed');
});

test('paths resolve like realpath to the mount source spec, relative to the mount', async () => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'lfs-mt-')));
  try {
    const mnt = join(base, 'my mnt');
    mkdirSync(join(mnt, 'dir', 'sub'), { recursive: true });
    writeFileSync(join(mnt, 'dir', 'f'), '');
    symlinkSync('dir/f', join(mnt, 'link'));
    symlinkSync(join(mnt, 'dir'), join(base, 'outside-link'));
    mkdirSync(join(base, 'elsewhere'));
    const info = join(base, 'mountinfo');
    writeFileSync(
      info,
      [
        `27 1 8:1 / / rw - ext4 /dev/sda1 rw`,
        `60 27 0:50 / ${mnt.replace(/ /g, '\\040')} rw,nosuid - fuse.stria 127.0.0.1:23000@tcp:/testfs/fileset rw`,
      ].join('\n'),
    );
    const s = new LfsSession({ mountinfo: info });
    const f = await s.target(join(mnt, 'dir', 'f'), true);
    assert.deepEqual(f.spec.path, ['fileset', 'dir', 'f'], 'the fileset of the mount comes first');
    assert.equal(f.spec.fsname, 'testfs');
    assert.deepEqual(f.spec.mgsNids, [{ addr: '127.0.0.1', port: 23000, net: 'tcp' }]);
    assert.equal(f.display, join(mnt, 'dir', 'f'), 'shown as given');
    assert.equal(f.mount!.mountpoint, mnt);

    assert.deepEqual((await s.target(join(mnt, 'link'), true)).spec.path, ['fileset', 'dir', 'f'], 'followed: the target');
    assert.deepEqual((await s.target(join(mnt, 'link'), false)).spec.path, ['fileset', 'link'], 'not followed: the link');
    assert.deepEqual((await s.target(join(mnt, 'dir', 'sub', '..', 'new-file'), false)).spec.path, ['fileset', 'dir', 'new-file'], 'a new name in an existing directory');
    assert.deepEqual((await s.target(join(base, 'outside-link', 'f'), true)).spec.path, ['fileset', 'dir', 'f'], 'a link from outside into the mount');
    assert.deepEqual((await s.target(`${mnt}/dir/`, false)).spec.path, ['fileset', 'dir']);
    assert.deepEqual((await s.target(mnt, true)).spec.path, ['fileset']);

    const cwd = process.cwd();
    process.chdir(join(mnt, 'dir'));
    try {
      const rel = await s.target('sub/../f', true);
      assert.deepEqual(rel.spec.path, ['fileset', 'dir', 'f'], 'relative to the working directory');
      assert.equal(rel.display, 'sub/../f');
    } finally {
      process.chdir(cwd);
    }

    await assert.rejects(s.target(join(base, 'elsewhere'), true), /elsewhere is not on a Stria filesystem/);
    await assert.rejects(s.target(join(mnt, 'missing', 'f'), true), /cannot access '.*missing\/f': No such file or directory/);
    await assert.rejects(s.target(join(mnt, 'missing', 'f'), false), /No such file or directory/, 'the directory must exist even when the name need not');
    const spec = await s.target('127.0.0.1:23000@tcp:/testfs/a/b', true);
    assert.deepEqual(spec.spec.path, ['a', 'b'], 'specs still work');
    assert.equal(spec.display, '/a/b');
    await s.close();
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
