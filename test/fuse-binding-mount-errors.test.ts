/** Native FUSE binding: availability check, and a failed mount leaves nothing behind. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { NativeFuseSession, nativeFuseAvailable } from '../src/fuse/native-session.js';
import { MemFs } from './helpers/memfs.js';
import { defaultOptions } from './helpers/fuse-mount.js';

test('the binding reports itself available on this machine', () => {
  assert.deepEqual(nativeFuseAvailable(), { ok: true });
});

test('mounting on a missing directory fails clearly, and the session is over', { timeout: 30_000 }, async () => {
  const session = new NativeFuseSession('/nonexistent/stria/mnt', new MemFs(), defaultOptions);
  await assert.rejects(session.mount(), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'FUSE_MOUNT_FAILED');
    assert.match(e.message, /\/nonexistent\/stria\/mnt/);
    assert.match(e.message, /No such file or directory/);
    return true;
  });
  await session.done;
  await session.unmount();
  await assert.rejects(session.mount(), /already mounted/);
});

test('unknown libfuse options are refused before anything is mounted', { timeout: 30_000 }, async () => {
  const session = new NativeFuseSession('/tmp', new MemFs(), { ...defaultOptions, extraOptions: ['no_such_option'] });
  await assert.rejects(session.mount(), (e: Error & { code?: string }) => e.code === 'FUSE_OPTIONS' && /unknown option.*no_such_option/.test(e.message));
  await session.done;
});

test('after unmount nothing keeps the process alive', { timeout: 30_000 }, async () => {
  // a child mounts, unmounts and must exit on its own
  const script = `
    const { NativeFuseSession } = await import(${JSON.stringify(new URL('../src/fuse/native-session.js', import.meta.url).href)});
    const { MemFs } = await import(${JSON.stringify(new URL('./helpers/memfs.js', import.meta.url).href)});
    const { defaultOptions, makeMountpoint } = await import(${JSON.stringify(new URL('./helpers/fuse-mount.js', import.meta.url).href)});
    const { rm } = await import('node:fs/promises');
    const { base, dir } = await makeMountpoint();
    const s = new NativeFuseSession(dir, new MemFs(), defaultOptions);
    await s.mount();
    await s.unmount();
    await rm(base, { recursive: true });
    console.log('unmounted');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  assert.equal(code, 0);
  assert.equal(out, 'unmounted\n');
});
