/** Native FUSE binding: a handler that does not answer in time gets an error reply, never a hang. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FUSE_ROOT_ID, type RequestCtx } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, sh, waitFor, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

const never = <T>(): Promise<T> => new Promise<T>(() => {});

test('stuck read, write and lookup handlers are answered ETIMEDOUT; the mount keeps working', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  const stuckRead = fs.addFile(FUSE_ROOT_ID, 'stuck-read', 'data', { directIo: true });
  const stuckWrite = fs.addFile(FUSE_ROOT_ID, 'stuck-write', '');
  const read = fs.read.bind(fs);
  const write = fs.write.bind(fs);
  const lookup = fs.lookup.bind(fs);
  fs.read = (ctx, ino, size, off, fh) => (ino === stuckRead ? never() : read(ctx, ino, size, off, fh));
  fs.write = (ctx, ino, data, off, fh, flags) => (ino === stuckWrite ? never() : write(ctx, ino, data, off, fh, flags));
  fs.lookup = (ctx, parent, name) => (name === 'stuck-lookup' ? never() : lookup(ctx, parent, name));
  return withMount(fs, { requestTimeoutMs: 300 }, async (m) => {
    const r1 = await sh(`cat ${m.path('stuck-read')}`);
    assert.notEqual(r1.code, 0);
    assert.match(r1.stderr, /timed out/i);

    const r2 = await sh(`dd if=/dev/zero of=${m.path('stuck-write')} bs=4k count=1 oflag=direct status=none`);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /timed out/i);

    const r3 = await sh(`stat ${m.path('stuck-lookup')}`);
    assert.notEqual(r3.code, 0);
    assert.match(r3.stderr, /timed out/i);

    assert.ok(m.session.stats()!.timeouts >= 3);
    const ok = await sh(`echo fine > ${m.path('other')} && cat ${m.path('other')}`);
    assert.equal(ok.stdout, 'fine\n');
  });
});

test('a handler that answers after the deadline has its result dropped', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  const slow = fs.addFile(FUSE_ROOT_ID, 'slow', 'late data', { directIo: true });
  let answered = false;
  const read = fs.read.bind(fs);
  fs.read = async (ctx: RequestCtx, ino, size, off, fh) => {
    if (ino !== slow) return read(ctx, ino, size, off, fh);
    await new Promise((r) => setTimeout(r, 600));
    answered = true;
    return read(ctx, ino, size, off, fh);
  };
  return withMount(fs, { requestTimeoutMs: 200 }, async (m) => {
    const r = await sh(`cat ${m.path('slow')}`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /timed out/i);
    assert.ok(await waitFor(() => answered));
    assert.ok(await waitFor(() => m.session.stats()!.late >= 1));
    assert.equal(m.session.stats()!.inFlight, 0);
  });
});
