/** Native FUSE binding: slow async handlers run side by side; a blocked JS thread cannot hang callers. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FUSE_ROOT_ID } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, sh, waitFor, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

test('32 readers are all in their handlers at the same time', { timeout: 90_000 }, () => {
  const N = 32;
  const fs = new MemFs();
  const files = new Set<bigint>();
  for (let i = 0; i < N; i++) files.add(fs.addFile(FUSE_ROOT_ID, `f${i}`, `content ${i}\n`, { directIo: true }));
  let inside = 0;
  let most = 0;
  const read = fs.read.bind(fs);
  fs.read = async (ctx, ino, size, off, fh) => {
    if (!files.has(ino) || off > 0) return read(ctx, ino, size, off, fh);
    inside++;
    most = Math.max(most, inside);
    // a barrier: nobody answers until all readers are inside (or the wait gives up)
    await waitFor(() => most === N, 30_000);
    inside--;
    return read(ctx, ino, size, off, fh);
  };
  return withMount(fs, { requestTimeoutMs: 120_000 }, async (m) => {
    const r = await sh(`cd ${m.dir} && for i in $(seq 0 ${N - 1}); do cat f$i > /dev/null & done; wait`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(most, N);
  });
});

test('requests time out even while the JS thread is blocked', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  const spin = fs.addFile(FUSE_ROOT_ID, 'spin', 'x', { directIo: true });
  fs.addFile(FUSE_ROOT_ID, 'other', 'y');
  let spun = false;
  const read = fs.read.bind(fs);
  fs.read = (ctx, ino, size, off, fh) => {
    if (ino === spin && !spun) {
      spun = true;
      const until = Date.now() + 3000;
      while (Date.now() < until) {
        // hold the JS thread
      }
    }
    return read(ctx, ino, size, off, fh);
  };
  return withMount(fs, { requestTimeoutMs: 200 }, async (m) => {
    const r = await sh(`cd ${m.dir} && (cat spin > /dev/null &) && sleep 0.3 && stat other`);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /timed out/i);
    assert.ok(spun);
    // the lookup was answered without JS, and its handler never ran
    assert.ok(await waitFor(() => m.session.stats()!.inFlight === 0));
    assert.equal(fs.calls.filter((c) => c.op === 'lookup' && c.ino === FUSE_ROOT_ID).length, 1);
  });
});
