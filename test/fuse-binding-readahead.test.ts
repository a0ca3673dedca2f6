/**
 * Native FUSE binding: the mount's readahead window (the bdi's read_ahead_kb) is 4 MiB by
 * default, never below maxReadahead, and follows an explicit `readahead`. Readahead is what
 * keeps several 1 MiB read requests in flight for one sequential reader.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, test } from 'node:test';
import { FUSE_ROOT_ID } from '../src/fuse/lowlevel.js';
import { DEFAULT_READAHEAD } from '../src/fuse/native-session.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

/** read_ahead_kb of the bdi behind `dir`, or undefined when sysfs does not show it. */
async function readaheadKb(dir: string): Promise<number | undefined> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const line = info.split('\n').find((l) => l.split(' ')[4] === dir);
  const dev = line?.split(' ')[2];
  if (!dev) return undefined;
  const text = await readFile(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : Number(text.trim());
}

const root = process.getuid?.() === 0;

test('the readahead window is 4 MiB by default and follows the option', { timeout: 60_000, skip: root ? false : 'needs root to set read_ahead_kb' }, async () => {
  const fs = new MemFs();
  fs.addFile(FUSE_ROOT_ID, 'f', 'x');
  await withMount(fs, { maxReadahead: 1 << 20 }, async (m) => {
    assert.equal(await readaheadKb(m.dir), DEFAULT_READAHEAD / 1024);
  });
  await withMount(fs, { maxReadahead: 1 << 20, readahead: 8 << 20 }, async (m) => {
    assert.equal(await readaheadKb(m.dir), 8 * 1024);
  });
  await withMount(fs, { maxReadahead: 16 << 20, readahead: 2 << 20 }, async (m) => {
    assert.equal(await readaheadKb(m.dir), 16 * 1024, 'never below maxReadahead');
  });
});
