/**
 * Sequential 1 MiB dd through the fuse-native fallback moves every byte, with
 * a fixture that throws written data away and reads zeros, so the figures
 * (printed as diagnostics, never asserted) are the adapter's and libfuse 2's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FallbackMemFs } from './helpers/fallback-memfs.js';
import { fallbackSkipReason, mountFallback, run, type FallbackMount } from './helpers/fallback-mount.js';

const skip = fallbackSkipReason();
const MIB = 1024 * 1024;
const COUNT = 256;

/** "268435456 bytes (268 MB, 256 MiB) copied, 1.2 s, 224 MB/s" -> bytes and seconds */
function ddResult(stderr: string): { bytes: number; seconds: number } {
  const m = /(\d+) bytes .* copied, ([\d.,]+) s/.exec(stderr);
  assert.ok(m, `dd summary in: ${stderr}`);
  return { bytes: Number(m[1]), seconds: Number(m[2]!.replace(',', '.')) };
}

describe('fuse-native fallback: sequential 1 MiB dd', { skip }, () => {
  const memfs = new FallbackMemFs({ discardData: true });
  let m: FallbackMount;

  before(async () => {
    m = await mountFallback(memfs);
  });

  after(async () => {
    await m?.cleanup();
  });

  it('writes every byte', async (t) => {
    const out = await run('dd', ['if=/dev/zero', `of=${m.p('sink')}`, 'bs=1M', `count=${COUNT}`], { timeoutMs: 300_000 });
    const r = ddResult(out.stderr);
    assert.equal(r.bytes, COUNT * MIB);
    assert.equal(memfs.nodeAt('/sink')!.size, COUNT * MIB);
    t.diagnostic(`write: ${COUNT} MiB in ${r.seconds} s = ${(COUNT / r.seconds).toFixed(1)} MiB/s (${memfs.count('write')} write requests)`);
  });

  it('reads every byte back', async (t) => {
    const reads = memfs.count('read');
    const out = await run('dd', [`if=${m.p('sink')}`, 'of=/dev/null', 'bs=1M'], { timeoutMs: 300_000 });
    const r = ddResult(out.stderr);
    assert.equal(r.bytes, COUNT * MIB);
    t.diagnostic(`read: ${COUNT} MiB in ${r.seconds} s = ${(COUNT / r.seconds).toFixed(1)} MiB/s (${memfs.count('read') - reads} read requests)`);
  });
});
