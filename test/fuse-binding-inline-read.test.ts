/**
 * Native FUSE binding, inline reading: the JS thread reads /dev/fuse itself while it is free,
 * and a JS thread that is blocked still gets its requests read by the native backstop threads
 * and answered at their deadline, never left hanging.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FUSE_ROOT_ID } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, sh, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

/** Blocks this thread (no event loop turns) until `path` exists or `maxMs` passed; returns whether it appeared. */
function blockUntilExists(path: string, maxMs: number): boolean {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const until = Date.now() + maxMs;
  for (let i = 0; i < maxMs / 10 + 1; i++) {
    if (existsSync(path)) return true;
    if (Date.now() >= until) return false;
    Atomics.wait(cell, 0, 0, 10);
  }
  return existsSync(path);
}

test('requests are read by the JS thread itself when it is free', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  fs.addFile(FUSE_ROOT_ID, 'f', 'hello inline\n', { directIo: true });
  return withMount(fs, {}, async (m) => {
    const before = m.session.stats()!;
    for (let i = 0; i < 5; i++) {
      const r = await sh(`cat ${m.path('f')}`);
      assert.equal(r.stdout, 'hello inline\n');
    }
    const after = m.session.stats()!;
    assert.ok(after.requests - before.requests >= 10, 'the reads reached the filesystem');
    assert.equal(after.inlineRequests - before.inlineRequests, after.requests - before.requests, 'every request was read inline');
  });
});

test('with inline reading off, the native threads read every request', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  fs.addFile(FUSE_ROOT_ID, 'f', 'hello threads\n', { directIo: true });
  return withMount(fs, { inlineRead: false }, async (m) => {
    const r = await sh(`cat ${m.path('f')}`);
    assert.equal(r.stdout, 'hello threads\n');
    assert.equal(m.session.stats()!.inlineRequests, 0);
  });
});

test('a blocked JS thread: its requests are still read and answered ETIMEDOUT; the mount works after', { timeout: 60_000 }, async () => {
  const scratch = await mkdtemp(join(tmpdir(), 'stria-inline-'));
  try {
    const fs = new MemFs();
    await withMount(fs, { requestTimeoutMs: 300 }, async (m) => {
      const done = join(scratch, 'done');
      const err = join(scratch, 'err');
      // The child stats a name while this thread is blocked: only the native side can answer.
      const child = spawn('bash', ['-c', `stat ${m.path('nothing-here')} 2>${err}; echo $? > ${done}.tmp && mv ${done}.tmp ${done}`], { stdio: 'ignore' });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      const answeredWhileBlocked = blockUntilExists(done, 20_000);
      await exited;
      assert.ok(answeredWhileBlocked, 'the stat returned while the JS thread was blocked');
      assert.notEqual(readFileSync(done, 'utf8').trim(), '0');
      assert.match(readFileSync(err, 'utf8'), /timed out/i);
      assert.ok(m.session.stats()!.timeouts >= 1);

      const ok = await sh(`echo fine > ${m.path('other')} && cat ${m.path('other')}`);
      assert.equal(ok.stdout, 'fine\n');
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});
