/** POSIX behaviour through a real mount, as root and as unprivileged users, with ordinary tools. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './helpers/cluster.js';
import { TestMount, sh } from './helpers/mount.js';

let cluster: TestCluster;
let m: TestMount;
const ALICE = 1001;
const BOB = 1002;

before(async () => {
  cluster = await TestCluster.start({ osts: 2 });
  m = await TestMount.start(cluster);
  await ok(`chmod 1777 ${m.mountpoint}`);
});

after(async () => {
  await m?.stop();
  await cluster?.stop();
});

async function ok(cmd: string, opts: { uid?: number } = {}): Promise<string> {
  const r = await sh(cmd, opts);
  assert.equal(r.code, 0, `${cmd}\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim();
}

async function fails(cmd: string, errText: RegExp, opts: { uid?: number } = {}): Promise<void> {
  const r = await sh(cmd, opts);
  assert.notEqual(r.code, 0, `${cmd} should fail`);
  assert.match(r.stderr, errText, `${cmd}: ${r.stderr}`);
}

test('mkdir -p of a deep tree, listing, rmdir of a non-empty directory', async () => {
  const deep = Array.from({ length: 40 }, (_, i) => `d${i}`).join('/');
  await ok(`mkdir -p ${m.path('tree', deep)}`);
  await ok(`touch ${m.path('tree', deep, 'leaf')}`);
  assert.equal(await ok(`find ${m.path('tree')} -type f | wc -l`), '1');
  assert.equal(await ok(`find ${m.path('tree')} -type d | wc -l`), '41');
  await fails(`rmdir ${m.path('tree', 'd0')}`, /Directory not empty/);
  await ok(`rm -rf ${m.path('tree')}`);
  await fails(`ls ${m.path('tree')}`, /No such file or directory/);
});

test('files belong to their creator; setgid directories give their group', async () => {
  await ok(`touch ${m.path('alice-file')}`, { uid: ALICE });
  assert.equal(await ok(`stat -c %u:%g ${m.path('alice-file')}`), `${ALICE}:${ALICE}`);
  await ok(`mkdir ${m.path('shared')} && chgrp 4242 ${m.path('shared')} && chmod 2777 ${m.path('shared')}`);
  await ok(`touch ${m.path('shared', 'f')} && mkdir ${m.path('shared', 'sub')}`, { uid: BOB });
  assert.equal(await ok(`stat -c %u:%g ${m.path('shared', 'f')}`), `${BOB}:4242`);
  assert.equal(await ok(`stat -c %g:%A ${m.path('shared', 'sub')}`), '4242:drwxr-sr-x');
});

test('permission refusals for other users, and the sticky bit', async () => {
  await ok(`echo secret > ${m.path('private')} && chmod 600 ${m.path('private')}`, { uid: ALICE });
  await fails(`cat ${m.path('private')}`, /Permission denied/, { uid: BOB });
  await fails(`echo x >> ${m.path('private')}`, /Permission denied/, { uid: BOB });
  await fails(`chmod 777 ${m.path('private')}`, /Operation not permitted/, { uid: BOB });
  await fails(`chown ${BOB} ${m.path('private')}`, /Operation not permitted/, { uid: ALICE });
  // The root of the mount is 1777: Bob cannot remove or rename Alice's file.
  await fails(`rm -f ${m.path('private')}`, /Operation not permitted/, { uid: BOB });
  await fails(`mv ${m.path('private')} ${m.path('stolen')}`, /Operation not permitted/, { uid: BOB });
  assert.equal(await ok(`cat ${m.path('private')}`, { uid: ALICE }), 'secret');
  await ok(`mkdir ${m.path('closed')} && chmod 700 ${m.path('closed')}`, { uid: ALICE });
  await fails(`touch ${m.path('closed', 'x')}`, /Permission denied/, { uid: BOB });
});

test('SUID/SGID are cleared on chown and on write by a non-owner', async () => {
  await ok(`touch ${m.path('suid')} && chmod 6777 ${m.path('suid')}`);
  await ok(`chown ${ALICE} ${m.path('suid')}`);
  assert.equal(await ok(`stat -c %a ${m.path('suid')}`), '777', 'chown cleared both bits');
  await ok(`chmod 6777 ${m.path('suid')}`);
  await ok(`echo data >> ${m.path('suid')}`, { uid: BOB });
  const mode = await ok(`stat -c %a ${m.path('suid')}`);
  assert.ok(mode === '777' || mode === '2777', `suid cleared by a non-owner's write (mode ${mode})`);
  assert.notEqual(mode.slice(0, 1), '6');
});

test('chmod, chown, utimensat with UTIME_OMIT and nanoseconds; ctime moves', async () => {
  const f = m.path('times');
  await ok(`touch ${f}`);
  await ok(`touch -m -d '2001-02-03 04:05:06.123456789' ${f}`);
  await ok(`touch -a -d '1999-01-01 00:00:00.987654321' ${f}`);
  const [atime, mtime] = (await ok(`stat -c '%x|%y' ${f}`)).split('|');
  assert.match(mtime!, /^2001-02-03 04:05:06\.123456789/, 'mtime kept with ns, untouched by the atime-only change (UTIME_OMIT)');
  assert.match(atime!, /^1999-01-01 00:00:00\.987654321/);
  const c0 = await ok(`stat -c %Z.%z ${f}`);
  await new Promise((r) => setTimeout(r, 1100));
  await ok(`chmod 640 ${f}`);
  const c1 = await ok(`stat -c %Z.%z ${f}`);
  assert.notEqual(c1, c0, 'chmod changes ctime');
  assert.equal(await ok(`stat -c %a ${f}`), '640');
  await ok(`chown ${ALICE}:${BOB} ${f}`);
  assert.equal(await ok(`stat -c %u:%g ${f}`), `${ALICE}:${BOB}`);
});

test('rename matrix: replace, across directories, no-replace, exchange, into own subtree', async () => {
  await ok(`mkdir -p ${m.path('rn/a/sub')} ${m.path('rn/b')} && echo one > ${m.path('rn/a/f1')} && echo two > ${m.path('rn/b/f2')}`);
  await ok(`mv ${m.path('rn/a/f1')} ${m.path('rn/b/f2')}`);
  assert.equal(await ok(`cat ${m.path('rn/b/f2')}`), 'one');
  await ok(`echo three > ${m.path('rn/a/f3')}`);
  await sh(`mv -T --no-clobber ${m.path('rn/a/f3')} ${m.path('rn/b/f2')}`);
  assert.equal(await ok(`cat ${m.path('rn/b/f2')}`), 'one', 'no-clobber kept the target');
  await ok(`python3 -c "import ctypes,os; libc=ctypes.CDLL(None,use_errno=True); r=libc.renameat2(-100,b'${m.path('rn/a/f3')}',-100,b'${m.path('rn/b/f2')}',2); assert r==0, os.strerror(ctypes.get_errno())"`);
  assert.equal(await ok(`cat ${m.path('rn/b/f2')}`), 'three', 'RENAME_EXCHANGE swapped');
  assert.equal(await ok(`cat ${m.path('rn/a/f3')}`), 'one');
  await fails(`mv ${m.path('rn/a')} ${m.path('rn/a/sub/inside')}`, /Invalid argument|cannot move/);
  await ok(`mv ${m.path('rn/a')} ${m.path('rn/b/a-moved')}`);
  assert.equal(await ok(`cat ${m.path('rn/b/a-moved/f3')}`), 'one');
  await ok(`mkdir ${m.path('rn/empty')} && mkdir -p ${m.path('rn/full/x')}`);
  await fails(`mv -T ${m.path('rn/empty')} ${m.path('rn/full')}`, /Directory not empty|cannot move|cannot overwrite/);
  await ok(`mv -T ${m.path('rn/full')} ${m.path('rn/empty')}`);
  assert.equal(await ok(`ls ${m.path('rn/empty')}`), 'x');
  await fails(`mv ${m.path('rn/b/f2')} ${m.path('rn/nodir/x')}`, /No such file or directory/);
});

test('hard links share one inode; symlinks; mknod and mkfifo; long names', async () => {
  await ok(`echo hello > ${m.path('h1')} && ln ${m.path('h1')} ${m.path('h2')}`);
  const [i1, i2] = [await ok(`stat -c %i ${m.path('h1')}`), await ok(`stat -c %i ${m.path('h2')}`)];
  assert.equal(i1, i2, 'same inode number through both names');
  assert.equal(await ok(`stat -c %h ${m.path('h1')}`), '2');
  await ok(`echo more >> ${m.path('h2')}`);
  assert.equal(await ok(`cat ${m.path('h1')}`), 'hello\nmore', 'a change through one name is seen through the other');
  await ok(`ln -s h1 ${m.path('sym')}`);
  assert.equal(await ok(`readlink ${m.path('sym')}`), 'h1');
  assert.equal(await ok(`cat ${m.path('sym')}`), 'hello\nmore');
  await ok(`ln -s loop2 ${m.path('loop1')} && ln -s loop1 ${m.path('loop2')}`);
  await fails(`cat ${m.path('loop1')}`, /Too many levels of symbolic links/);
  await ok(`mkfifo ${m.path('fifo')} && mknod ${m.path('chr')} c 1 3`);
  assert.equal(await ok(`stat -c %F ${m.path('fifo')}`), 'fifo');
  assert.equal(await ok(`stat -c '%F %t:%T' ${m.path('chr')}`), 'character special file 1:3');
  await fails(`touch ${m.path('x'.repeat(256))}`, /File name too long/);
  await ok(`touch ${m.path('y'.repeat(255))}`);
  await fails(`mkdir ${m.path('h1')}`, /File exists/);
  await fails(`ls ${m.path('h1', 'x')}`, /Not a directory/);
});

test('xattrs with setfattr/getfattr; lustre.lov is there', async () => {
  await ok(`touch ${m.path('xa')}`);
  await ok(`setfattr -n user.color -v blue ${m.path('xa')}`);
  assert.match(await ok(`getfattr -n user.color ${m.path('xa')}`), /user.color="blue"/);
  assert.match(await ok(`getfattr -d -m - ${m.path('xa')}`), /lustre\.lov=0s/);
  await ok(`setfattr -x user.color ${m.path('xa')}`);
  await fails(`getfattr -n user.color ${m.path('xa')}`, /No such attribute/);
});

test('df shows the real capacity of the OSTs', async () => {
  const df = await ok(`df -B1 --output=size,avail ${m.mountpoint} | tail -1`);
  const [size, avail] = df.split(/\s+/).map(Number);
  const osts = await Promise.all(cluster.ports.oss.map((_, i) => sh(`df -B1 --output=size ${cluster.ostDir(i)} | tail -1`)));
  const ostSize = osts.reduce((a, r) => a + Number(r.stdout.trim()), 0);
  assert.ok(Math.abs(size! - ostSize) / ostSize < 0.01, `mount size ${size} ~ sum of OST filesystems ${ostSize}`);
  assert.ok(avail! > 0 && avail! <= size!);
});
