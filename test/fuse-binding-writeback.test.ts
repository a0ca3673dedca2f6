/** Native FUSE binding: with writebackCache the kernel gathers small writes into large ones. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, sh, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

const script = (path: string) => `head -c 1048576 /dev/urandom > /tmp/wb-src-$$ && dd if=/tmp/wb-src-$$ of=${path} bs=4k conv=fsync status=none && cmp /tmp/wb-src-$$ ${path}; rc=$?; rm -f /tmp/wb-src-$$; exit $rc`;

test('4 KiB writes: one request each without the cache, a few large ones with it', { timeout: 60_000 }, async () => {
  const plain = new MemFs();
  await withMount(plain, { writebackCache: false }, async (m) => {
    const r = await sh(script(m.path('f')));
    assert.equal(r.code, 0, r.stderr);
  });
  assert.equal(plain.writeSizes.length, 256);

  const cached = new MemFs();
  await withMount(cached, { writebackCache: true }, async (m) => {
    const r = await sh(script(m.path('f')));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(cached.node(cached.resolve('f')).size, 1 << 20);
  });
  assert.ok(cached.writeSizes.length < 64, `write sizes: ${cached.writeSizes.join(',')}`);
  assert.equal(cached.writeSizes.reduce((a, b) => a + b, 0), 1 << 20);
});
