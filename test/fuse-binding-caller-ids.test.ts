/** Native FUSE binding: the caller's uid, gid, pid and umask reach the handlers. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, sh, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

test('files created by an unprivileged user carry its ids, and the handler saw them', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  return withMount(fs, {}, async (m) => {
    const r = await sh(`umask 027 && cd ${m.dir} && bash -c 'echo $$; exec mkdir d' && echo hi > f && stat -c '%u %g %a %n' d f`, { uid: 1000, gid: 1000 });
    assert.equal(r.code, 0, r.stderr);
    const [mkdirPid, ...stats] = r.stdout.trim().split('\n');
    assert.deepEqual(stats, ['1000 1000 750 d', '1000 1000 640 f']);

    const mkdir = fs.calls.find((c) => c.op === 'mkdir');
    const create = fs.calls.find((c) => c.op === 'create');
    assert.ok(mkdir && create);
    assert.equal(mkdir.uid, 1000);
    assert.equal(mkdir.gid, 1000);
    assert.equal(mkdir.umask, 0o027);
    assert.equal(mkdir.pid, Number(mkdirPid));
    assert.equal(create.uid, 1000);
    assert.equal(create.gid, 1000);

    // root still works, and is seen as root
    const r2 = await sh(`touch ${m.path('byroot')} && stat -c '%u %g' ${m.path('byroot')}`);
    assert.equal(r2.stdout.trim(), '0 0');
  });
});

test('default_permissions: the kernel refuses another user before the handler runs', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  return withMount(fs, {}, async (m) => {
    const r = await sh(`mkdir ${m.path('private')} && chmod 700 ${m.path('private')}`);
    assert.equal(r.code, 0, r.stderr);
    const before = fs.calls.length;
    const denied = await sh(`touch ${m.path('private', 'x')}`, { uid: 1000, gid: 1000 });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Permission denied/);
    assert.equal(fs.calls.slice(before).filter((c) => c.op === 'create' || c.op === 'mknod').length, 0);
  });
});
