/** Native FUSE binding: 1 MiB application I/O reaches the handlers as 1 MiB requests. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FUSE_ROOT_ID } from '../src/fuse/lowlevel.js';
import { MemFs } from './helpers/memfs.js';
import { cleanupMounts, sh, withMount } from './helpers/fuse-mount.js';

after(cleanupMounts);

const MIB = 1 << 20;

test('dd bs=1M writes arrive as single 1 MiB write requests, without a copy per request', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  return withMount(fs, {}, async (m) => {
    const r = await sh(`dd if=/dev/urandom of=${m.path('big')} bs=1M count=16 status=none && cmp <(head -c 16777216 ${m.path('big')}) ${m.path('big')}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.writeSizes.length, 16, `write sizes: ${fs.writeSizes.join(',')}`);
    assert.ok(fs.writeSizes.every((n) => n === MIB), `write sizes: ${fs.writeSizes.join(',')}`);
    const stats = m.session.stats()!;
    assert.equal(stats.zeroCopyWrites, 16);
    assert.equal(stats.copiedWrites, 0);
  });
});

test('a direct 1 MiB read arrives as one 1 MiB read request', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  fs.addFile(FUSE_ROOT_ID, 'zeros', '', { sink: true, size: 8 * MIB });
  return withMount(fs, {}, async (m) => {
    const r = await sh(`dd if=${m.path('zeros')} of=/dev/null bs=1M count=8 iflag=direct status=none`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fs.readSizes, new Array(8).fill(MIB));
  });
});

test('buffered sequential reads are served in 1 MiB requests', { timeout: 60_000 }, () => {
  const fs = new MemFs();
  fs.addFile(FUSE_ROOT_ID, 'zeros', '', { sink: true, size: 64 * MIB });
  return withMount(fs, {}, async (m) => {
    const r = await sh(`dd if=${m.path('zeros')} of=/dev/null bs=1M status=none`);
    assert.equal(r.code, 0, r.stderr);
    const big = fs.readSizes.filter((n) => n === MIB).length;
    // readahead may send a smaller first request; the bulk must be 1 MiB each
    assert.ok(big >= 60, `read sizes: ${fs.readSizes.join(',')}`);
  });
});
