/** Native FUSE binding: how a session ends (our unmount, busy mounts, unmount from outside). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { after, test } from 'node:test';
import { FUSE_ROOT_ID } from '../src/fuse/lowlevel.js';
import { NativeFuseSession } from '../src/fuse/native-session.js';
import { MemFs } from './helpers/memfs.js';
import { boundedUnmount, cleanupMounts, defaultOptions, isMounted, makeMountpoint, run, sh, waitFor, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

const T = { timeout: 60_000 };

test('fusermount3 -u from outside ends the session: done resolves and destroy runs', T, async () => {
  const { base, dir } = await makeMountpoint();
  const fs = new MemFs();
  let destroyed = 0;
  fs.destroy = () => void destroyed++;
  const session = new NativeFuseSession(dir, fs, defaultOptions);
  try {
    await session.mount();
    assert.equal(await isMounted(dir), true);
    const r = await run(['fusermount3', '-u', dir]);
    assert.equal(r.code, 0, r.stderr);
    await session.done;
    assert.equal(destroyed, 1);
    assert.equal(await isMounted(dir), false);
    await session.unmount(); // nothing left to do, and no error
  } finally {
    await boundedUnmount(session, dir);
    await rm(base, { recursive: true, force: true });
  }
});

test('unmount of a busy mount detaches it lazily and still ends the session', T, () => {
  const fs = new MemFs();
  fs.addFile(FUSE_ROOT_ID, 'held', 'x');
  return withMount(fs, {}, async (m) => {
    const holder = spawn('bash', ['-c', `exec 3<${m.path('held')}; cd ${m.dir}; echo open; exec sleep 30`], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      let out = '';
      holder.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      assert.ok(await waitFor(() => out.includes('open') || holder.exitCode !== null, 10_000));
      assert.ok(out.includes('open'));
      const plain = await run(['umount', m.dir]);
      assert.notEqual(plain.code, 0); // busy
      await m.session.unmount();
      await m.session.done;
      assert.equal(await isMounted(m.dir), false);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

test('unmount does not wait for a stuck handler; its caller gets an error', T, () => {
  const fs = new MemFs();
  const lookup = fs.lookup.bind(fs);
  let stuck = 0;
  fs.lookup = (ctx, parent, name) => {
    if (name !== 'stuck') return lookup(ctx, parent, name);
    stuck++;
    return new Promise(() => {});
  };
  return withMount(fs, { requestTimeoutMs: 120_000 }, async (m) => {
    const stat = spawn('stat', [m.path('stuck')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    stat.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const gone = new Promise<number | null>((r) => stat.once('exit', (code) => r(code)));
    assert.ok(await waitFor(() => stuck === 1));
    await m.session.unmount();
    assert.notEqual(await gone, 0);
    assert.ok(err.length > 0);
    assert.equal(await isMounted(m.dir), false);
  });
});

test('unmount is idempotent and concurrent calls share the work', T, () =>
  withMount(new MemFs(), {}, async (m) => {
    assert.equal((await sh(`echo 1 > ${m.path('f')} && cat ${m.path('f')}`)).stdout, '1\n');
    await Promise.all([m.session.unmount(), m.session.unmount()]);
    await m.session.unmount();
    await m.session.done;
    assert.equal(await isMounted(m.dir), false);
  }));
