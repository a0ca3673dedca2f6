/**
 * Ending a fuse-native fallback session leaves nothing behind: the mount is
 * gone, `done` resolves, the filesystem got back every lookup it counted and
 * every handle it opened, and destroy ran, whether we unmounted, someone else
 * did, or (with autoUnmount) the serving process died.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { FuseNativeSession } from '../src/fuse/fuse-native-session.js';
import { FallbackMemFs } from './helpers/fallback-memfs.js';
import { fallbackSessionOptions, fallbackSkipReason, isMountpoint, mountFallback, run, waitFor, type FallbackMount } from './helpers/fallback-mount.js';

const skip = fallbackSkipReason();

function settlesWithin<T>(p: Promise<T>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
}

/** Caches some names, then has a child process hold a file open (this process must not: see ownOpenFiles). */
async function exerciseAndHold(m: FallbackMount): Promise<ChildProcess> {
  await fs.mkdir(m.p('a/b'), { recursive: true });
  await fs.writeFile(m.p('a/b/f'), 'data');
  await fs.stat(m.p('a/b/f'));
  const child = spawn('sh', ['-c', 'exec 3< "$1"; echo held; exec sleep 60', 'sh', m.p('a/b/f')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const held = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000);
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve(true);
    });
    child.once('exit', () => resolve(false));
  });
  assert.equal(held, true, 'the child opened the file');
  return child;
}

describe('fuse-native fallback: the end of a session', { skip }, () => {
  const leftovers: FallbackMount[] = [];
  after(async () => {
    for (const m of leftovers) await m.cleanup();
  });

  it('unmount() detaches a busy mount, resolves done, balances lookups and handles, and is idempotent', async () => {
    const memfs = new FallbackMemFs({ entryTimeout: 60, attrTimeout: 60 });
    const m = await mountFallback(memfs);
    leftovers.push(m);
    const holder = await exerciseAndHold(m);
    try {
      assert.ok(m.session.translator.paths.stats().names > 0, 'names were cached');
      assert.ok(memfs.outstandingLookups() > 0);
      assert.equal(memfs.openCount(), 1);

      await m.session.unmount();
      assert.equal(await settlesWithin(m.session.done, 5000), true, 'done resolved');
      assert.equal(await isMountpoint(m.dir), false);
      assert.equal(memfs.destroyed, true);
      assert.equal(memfs.outstandingLookups(), 0);
      assert.deepEqual(memfs.forgetErrors, []);
      assert.equal(memfs.openCount(), 0, 'the handle still open was released');
      await m.session.unmount();
      await fs.rmdir(m.dir);
    } finally {
      holder.kill('SIGKILL');
    }
    await m.cleanup();
  });

  it('refuses to unmount while this process holds a file open on the mount, and serves on', async () => {
    const memfs = new FallbackMemFs();
    const m = await mountFallback(memfs);
    leftovers.push(m);
    await fs.writeFile(m.p('mine'), 'open here');
    const fh = await fs.open(m.p('mine'), 'r');
    try {
      await assert.rejects(m.session.unmount(), { code: 'EBUSY' });
      assert.equal(await isMountpoint(m.dir), true);
      assert.equal(await fs.readFile(m.p('mine'), 'utf8'), 'open here');
    } finally {
      await fh.close();
    }
    await m.session.unmount();
    assert.equal(await isMountpoint(m.dir), false);
    await m.cleanup();
  });

  it('notices an unmount from outside and ends the session', async () => {
    const memfs = new FallbackMemFs();
    const m = await mountFallback(memfs);
    leftovers.push(m);
    await fs.writeFile(m.p('x'), 'y');
    await run('fusermount', ['-u', m.dir]);
    assert.equal(await settlesWithin(m.session.done, 10_000), true, 'done resolved');
    assert.equal(memfs.destroyed, true);
    assert.equal(memfs.outstandingLookups(), 0);
    assert.deepEqual(memfs.forgetErrors, []);
    await m.session.unmount();
    await m.cleanup();
  });

  it('refuses a mountpoint that does not exist, and the session is over', async () => {
    const dir = path.join(os.tmpdir(), `stria-fallback-missing-${process.pid}-${Date.now()}`);
    const session = new FuseNativeSession(dir, new FallbackMemFs(), fallbackSessionOptions());
    await assert.rejects(session.mount(), { code: 'ENOENT' });
    assert.equal(await settlesWithin(session.done, 1000), true);
    await assert.rejects(session.mount(), { code: 'EBUSY' });
  });

  it('with autoUnmount, the mount goes away when the serving process is killed', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'stria-fallback-auto-'));
    const child = spawn(process.execPath, [fileURLToPath(new URL('./helpers/fallback-child.js', import.meta.url)), dir, 'auto_unmount'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const mounted = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 20_000);
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('mounted')) {
            clearTimeout(timer);
            resolve(true);
          }
        });
        child.on('exit', () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      assert.equal(mounted, true, `child mounted (${stderr})`);
      assert.equal(await isMountpoint(dir), true);
      const exited = new Promise((r) => child.on('exit', r));
      child.kill('SIGKILL');
      await exited;
      assert.equal(await waitFor(async () => !(await isMountpoint(dir)), 10_000, 50), true, 'auto_unmount removed the mount');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      if (await isMountpoint(dir)) await run('umount', ['-l', dir]).catch(() => undefined);
      await fs.rmdir(dir).catch(() => undefined);
    }
  });
});
