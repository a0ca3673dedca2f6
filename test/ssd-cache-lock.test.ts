import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SsdCache } from '../src/client/cache/ssd-cache.js';
import { LOCK_FILE } from '../src/client/cache/ssd-lock.js';

const moduleUrl = pathToFileURL(join(fileURLToPath(new URL('.', import.meta.url)), '../src/client/cache/ssd-cache.js')).href;

/** a node process that opens the cache on dir, prints "ready" and waits to be killed */
function holder(dir: string): { ready: Promise<void>; kill: () => Promise<void> } {
  const code = `import { SsdCache } from ${JSON.stringify(moduleUrl)};
    await SsdCache.open({ dirs: [${JSON.stringify(dir)}], maxBytes: 1 << 20, freeSpaceRatio: 0 });
    console.log('ready');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  let errText = '';
  child.stderr!.on('data', (d: Buffer) => (errText += d.toString()));
  const ready = new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`holder not ready: ${errText}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        res();
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      rej(new Error(`holder exited: ${errText}`));
    });
  });
  return {
    ready,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

test('a second open of the same dir in one process throws', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-ssd-lock-'));
  try {
    const c = await SsdCache.open({ dirs: [dir], maxBytes: 1 << 20, freeSpaceRatio: 0 });
    await assert.rejects(SsdCache.open({ dirs: [dir], maxBytes: 1 << 20, freeSpaceRatio: 0 }), { code: 'SSD_CACHE_LOCKED' });
    await c.close();
    const again = await SsdCache.open({ dirs: [dir], maxBytes: 1 << 20, freeSpaceRatio: 0 });
    await again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a dir locked by another live process is refused; its lock is taken over once that process is dead', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stria-ssd-lock-'));
  const h = holder(dir);
  try {
    await h.ready;
    await assert.rejects(SsdCache.open({ dirs: [dir], maxBytes: 1 << 20, freeSpaceRatio: 0 }), { code: 'SSD_CACHE_LOCKED' });
    await h.kill(); // SIGKILL: the lock file stays behind, naming a dead pid
    await stat(join(dir, LOCK_FILE));
    const c = await SsdCache.open({ dirs: [dir], maxBytes: 1 << 20, freeSpaceRatio: 0 });
    assert.equal((await readFile(join(dir, LOCK_FILE), 'utf8')).trim(), String(process.pid));
    c.put('1:0x1:1/v/0', Buffer.from('hello'));
    await c.flush();
    assert.deepEqual(await c.get('1:0x1:1/v/0'), Buffer.from('hello'));
    await c.close();
    await assert.rejects(stat(join(dir, LOCK_FILE)), { code: 'ENOENT' });
  } finally {
    await h.kill();
    await rm(dir, { recursive: true, force: true });
  }
});
